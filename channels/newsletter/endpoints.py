"""The newsletter's one-click unsubscribe endpoint (RFC 8058): ``GET`` and ``POST /unsubscribe``."""

from __future__ import annotations

import html
from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import quote

from pydantic import SecretStr

from carecast.plugin import ChannelLedger as Ledger
from carecast.plugin import (
    PracticeContext,
    Request,
    Response,
    Route,
    TokenError,
    resolve,
)
from carecast.plugin.audience import (
    Token,
    apply_unsubscribe,
    verify_token,
)
from carecast_channels.newsletter.render import NewsletterRendering

UNSUBSCRIBE_PATH = "/unsubscribe"
#: The unsubscribe page's field asking to stop every list of the practice, not only the link's one.
ALL_EMAIL_FIELD = "all_email"


class UnsubscribeEndpoint:
    """One-click unsubscribe (RFC 8058) for the newsletters with an ``unsubscribe_secret``.

    ``GET /unsubscribe?t=TOKEN``: a confirmation page with two buttons (this list; all email from the practice), and
    nothing recorded, since mail scanners fetch every link of a message. ``POST /unsubscribe?t=TOKEN`` (the
    one-click POST, body ``List-Unsubscribe=One-Click``, or the page's first button) records the unsubscribe from
    the token's list with :func:`carecast.unsubscribe.apply_unsubscribe`; with ``all_email=yes`` (the second button)
    from every list of the practice. A token the
    ledger never issued, or an old signed one not signed with one of the newsletters' secrets or expired: 400, and
    the reason goes to the log only.
    """

    def __init__(self, channels: Sequence[NewsletterRendering]) -> None:
        """Raises CredentialError when a secret cannot be read: read once now, so the server stops at start."""
        self.channels = channels
        self._secrets()

    def routes(self) -> tuple[Route, ...]:
        announced = tuple(
            (f"channels.{channel.instance}.unsubscribe_url", str(channel.config.unsubscribe_url))
            for channel in self.channels
        )
        return (
            Route("GET", UNSUBSCRIBE_PATH, self.confirmation_page, announced),
            Route("POST", UNSUBSCRIBE_PATH, self.unsubscribe, announced),
        )

    def confirmation_page(self, request: Request, practice: PracticeContext) -> Response:
        token = request.query_value("t")
        try:
            _, unsubscribing = self._verified(token, practice.ledger)
        except TokenError as exc:
            return _bad_link(exc)
        # Posts back to this very URL (token included); the hidden field is what RFC 8058 clients send. The second
        # form stops every list of the practice (CAN-SPAM lets a recipient opt out of all its commercial email).
        action = html.escape(quote(token, safe=""))
        form = (
            f'<form method="post" action="?t={action}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            f'<button type="submit">Unsubscribe from {html.escape(unsubscribing.list_id)}</button></form>'
            f'<form method="post" action="?t={action}">'
            f'<input type="hidden" name="{ALL_EMAIL_FIELD}" value="yes">'
            '<button type="submit">Unsubscribe from all email from us</button></form>'
        )
        name = practice.settings.practice.name
        return _page(
            "Unsubscribe",
            f"Stop receiving emails from {name} ({unsubscribing.list_id})? Press the button to confirm.",
            form,
            "confirmation page",
        )

    def unsubscribe(self, request: Request, practice: PracticeContext) -> Response:
        # The body RFC 8058 clients send (List-Unsubscribe=One-Click) is not required: the token is the proof.
        token = request.query_value("t")
        everything = request.form().get(ALL_EMAIL_FIELD) == "yes"
        try:
            secret, _ = self._verified(token, practice.ledger)
            unsubscribed = apply_unsubscribe(practice.ledger, secret, token, everything=everything)
        except TokenError as exc:
            return _bad_link(exc)
        name = practice.settings.practice.name
        if everything:
            return _page(
                "Unsubscribed",
                f"You will receive no more emails from {name}.",
                note="unsubscribed from all email",
            )
        return _page(
            "Unsubscribed",
            f"You will receive no more emails from {name} ({unsubscribed.list_id}).",
            note=f"unsubscribed from {unsubscribed.list_id}",
        )

    def _verified(self, token: str, ledger: Ledger) -> tuple[SecretStr, Token]:
        """What ``token`` stands for (:func:`carecast.unsubscribe.verify_token`: an opaque token the ledger issued,
        or a signed one from before), with the ``unsubscribe_secret`` it was checked with.

        Raises TokenError when it is neither; CredentialError when a secret cannot be read.
        """
        refusal = TokenError("not a token this practice issued")
        for secret in self._secrets():
            try:
                return secret, verify_token(ledger, secret, token)
            except TokenError as exc:
                refusal = exc
        raise refusal

    def _secrets(self) -> list[SecretStr]:
        return [resolve(c.config.unsubscribe_secret) for c in self.channels if c.config.unsubscribe_secret]


def _page(title: str, paragraph: str, form: str = "", note: str = "") -> Response:
    body = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>\n<body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(paragraph)}</p>{form}</body></html>\n"
    )
    return Response(HTTPStatus.OK, body.encode(), "text/html; charset=utf-8", note)


def _bad_link(exc: TokenError) -> Response:
    # The reason goes to the log only: the page says nothing that would help forge a token.
    return Response.text(HTTPStatus.BAD_REQUEST, "This unsubscribe link is not valid.", f"refused: {exc.reason}")
