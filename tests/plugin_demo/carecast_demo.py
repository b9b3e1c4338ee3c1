"""A channel from outside CareCast: one line per item to the outbox, and ``GET /demo/hello`` on the webhook server.

Everything it uses is the contract in :mod:`carecast.channel`; it is what the README's "Writing a channel" shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import ClassVar, Self

from carecast.channel import Channel, PracticeContext, PublishContext, Request, Response, Route
from carecast.model import ContentItem, Draft, Receipt


class DemoChannel(Channel):
    name = "demo"
    utm_source = "demo"
    utm_medium = "social"
    limits: ClassVar[dict[str, int]] = {"max_characters": 200}

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        [item] = items
        text = " ".join(part for part in (item.title, self.link(item)) if part)
        return Draft(channel=self.instance, item_ids=(item.id,), parts=(text,))

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        path = context.outbox.write(self.instance, context.key, ".txt", draft.text.encode())
        return context.outbox.receipt(path)

    @classmethod
    def routes(cls, channels: Sequence[Self]) -> Sequence[Route]:
        names = ", ".join(channel.instance for channel in channels)

        def hello(request: Request, practice: PracticeContext) -> Response:
            who = request.query_value("name") or "stranger"
            return Response.text(HTTPStatus.OK, f"Hello {who}, from {practice.settings.practice.name} ({names})")

        return [Route("GET", "/demo/hello", hello)]
