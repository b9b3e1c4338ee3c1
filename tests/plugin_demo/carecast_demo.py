"""A channel from outside CareCast: posts a notice to a notice board's HTTP API, or without credentials writes it to
the outbox; and ``GET /demo/hello`` on the webhook server.

Everything it imports from CareCast is the public plugin API, :mod:`carecast.plugin`; it is what the README's
"Writing a channel" shows, and ``test_carecast_demo.py`` runs CareCast's contract kit on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import ClassVar, Self

import requests

from carecast.plugin import (
    Channel,
    ChannelSettings,
    ContentItem,
    Draft,
    PracticeContext,
    PublishContext,
    PublishError,
    Receipt,
    Request,
    Response,
    Route,
    SecretRef,
    now_utc,
    resolve,
    send_once,
)


class DemoConfig(ChannelSettings):
    api_base: str | None = None  # the notice board, e.g. https://board.example.com/api
    credentials: SecretRef | None = None  # its bearer token, e.g. {env: NOTICE_BOARD_TOKEN}


class DemoChannel(Channel):
    name = "demo"
    Config = DemoConfig
    config: DemoConfig
    utm_source = "demo"
    utm_medium = "social"
    limits: ClassVar[dict[str, int]] = {"max_characters": 200}

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        [item] = items
        text = " ".join(part for part in (item.title, self.link(item)) if part)
        return Draft(channel=self.instance, item_ids=(item.id,), parts=(text,))

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Post ``draft`` to the notice board once (claimed first), else write it to the outbox.

        Raises CredentialError when the token cannot be read; PublishError (transient for a 5xx or no answer)."""
        body = draft.text.encode()
        if self.config.credentials is None or self.config.api_base is None:
            return context.outbox.receipt(context.outbox.write(self.instance, context.key, ".txt", body))
        token = resolve(self.config.credentials)
        url = f"{self.config.api_base}/notices"

        def send() -> Receipt:
            context.pace()
            headers = {"Authorization": f"Bearer {token.get_secret_value()}", "Content-Type": "text/plain"}
            try:
                answer = requests.post(url, data=body, headers=headers, timeout=10)
            except requests.RequestException as exc:
                raise PublishError(self.instance, f"the notice board did not answer: {type(exc).__name__}") from exc
            if answer.status_code != HTTPStatus.CREATED:
                reason = f"the notice board answered {answer.status_code}"
                raise PublishError(self.instance, reason, transient=answer.status_code >= 500)
            notice = answer.json()
            return Receipt(location=str(notice["url"]), sent_at=now_utc(), provider_ids=(str(notice["id"]),))

        return send_once(self.instance, context, send, None)

    @classmethod
    def routes(cls, channels: Sequence[Self]) -> Sequence[Route]:
        names = ", ".join(channel.instance for channel in channels)

        def hello(request: Request, practice: PracticeContext) -> Response:
            who = request.query_value("name") or "stranger"
            return Response.text(HTTPStatus.OK, f"Hello {who}, from {practice.settings.practice.name} ({names})")

        return [Route("GET", "/demo/hello", hello)]
