"""The practice's public endpoints for delivery compliance, as a framework-free WSGI application.

- ``POST /twilio/status``: Twilio's status callbacks, handed to :meth:`SmsChannel.apply_status_callback`, which
  checks ``X-Twilio-Signature`` and records the message delivered or failed. 204; 403 when the signature is wrong.
- ``POST /twilio/inbound``: a text a recipient sent to the practice's number. Once its signature is proven,
  :func:`carecast.compliance.handle_inbound` records STOP / START and the answer is TwiML carrying the one
  confirmation (or the HELP text), or an empty ``<Response/>``.
- ``GET /unsubscribe?t=TOKEN``: a confirmation page with a button, and nothing recorded, since mail scanners fetch
  every link of a message. ``POST /unsubscribe?t=TOKEN`` (the RFC 8058 one-click POST, body
  ``List-Unsubscribe=One-Click``, or the page's button) records the unsubscribe with
  :func:`carecast.unsubscribe.apply_unsubscribe`. A token not signed with a newsletter's ``unsubscribe_secret`` → 400.

Twilio signs the URL it called, so behind a proxy or tunnel the signature is checked against ``public_url`` (what
Twilio was given, e.g. ``https://hooks.oakviewpt.com``) plus the request's path and query; without one, against the
URL the request itself names. The endpoints of a channel that is not configured for them (an SMS channel without
``credentials``, a newsletter without ``unsubscribe_secret``) answer 404.

:func:`make_server` serves the application with the standard library, one thread per request (a status callback
may wait a few seconds for its send to be recorded); any WSGI server can serve :class:`WebhookApp` instead. Each
request is logged in one line: method, path without its query (tokens stay out of logs), status and time; never a
phone number, an address or a secret.
"""

from __future__ import annotations

import hmac
import html
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, parse_qsl, quote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as wsgi_server
from wsgiref.util import request_uri

from pydantic import SecretStr

from carecast.compliance import handle_inbound
from carecast.config import Settings
from carecast.errors import ChannelError, ConfigError, CredentialError, LedgerError, TokenError
from carecast.ledger import Ledger
from carecast.pipeline import make_channel
from carecast.secrets import resolve
from carecast.unsubscribe import Token, apply_unsubscribe, verify_token
from channels.newsletter import NewsletterChannel, NewsletterConfig
from channels.sms import SmsChannel, SmsConfig, twilio_signature

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger(__name__)

STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
UNSUBSCRIBE_PATH = "/unsubscribe"
#: Twilio's forms and a one-click POST are a few hundred bytes; anything far larger is refused unread.
MAX_BODY = 64 * 1024

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class Answer:
    """What an endpoint answers; ``note`` goes in the request's log line, so it never holds personal data."""

    status: HTTPStatus
    body: bytes = b""
    content_type: str | None = "text/plain; charset=utf-8"
    note: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: HTTPStatus, message: str, note: str = "") -> Answer:
        return cls(status, f"{message}\n".encode(), note=note or message)

    @classmethod
    def page(cls, title: str, paragraph: str, form: str = "", note: str = "") -> Answer:
        body = (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title></head>\n<body><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(paragraph)}</p>{form}</body></html>\n"
        )
        return cls(HTTPStatus.OK, body.encode(), "text/html; charset=utf-8", note)


class WebhookApp:
    """The WSGI application of the three endpoints, for one practice's settings and ledger."""

    def __init__(self, settings: Settings, ledger: Ledger, public_url: str | None = None) -> None:
        """Raises CredentialError when a secret the endpoints need (an SMS channel's Auth Token, a newsletter's
        ``unsubscribe_secret``) cannot be read; ConfigError when no channel is configured for any endpoint."""
        self.settings = settings
        self.ledger = ledger
        self.public_url = public_url.rstrip("/") if public_url else None
        self.sms = [
            cast(SmsChannel, make_channel(settings, name))
            for name, config in settings.channels.items()
            if isinstance(config, SmsConfig) and config.credentials is not None
        ]
        self.newsletters = [
            cast(NewsletterChannel, make_channel(settings, name))
            for name, config in settings.channels.items()
            if isinstance(config, NewsletterConfig) and config.unsubscribe_secret is not None
        ]
        if not self.sms and not self.newsletters:
            raise ConfigError(
                settings.file,
                [("channels", "an sms channel with credentials or a newsletter with unsubscribe_secret to serve")],
            )
        self._routes: dict[str, dict[str, Callable[[dict[str, Any]], Answer]]] = {}
        if self.sms:
            self._routes |= {STATUS_PATH: {"POST": self._status}, INBOUND_PATH: {"POST": self._inbound}}
        if self.newsletters:
            self._routes[UNSUBSCRIBE_PATH] = {"GET": self._unsubscribe_page, "POST": self._unsubscribe}
        # Read every secret once now, so a missing one stops the server at start rather than a request later.
        self._twilio_tokens()
        self._unsubscribe_secrets()

    @property
    def endpoints(self) -> list[tuple[str, str]]:
        """What is served: (methods, path) pairs such as ``("POST", "/twilio/status")``."""
        return [("/".join(handlers), path) for path, handlers in self._routes.items()]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        answer = self._answer(method, path, environ)
        log.info(
            "%s %s %d %s(%.0f ms)",
            method,
            path,
            answer.status,
            f"{answer.note} " if answer.note else "",
            (time.monotonic() - started) * 1000,
        )
        headers = [("Content-Length", str(len(answer.body))), ("Cache-Control", "no-store"), *answer.headers]
        if answer.content_type:
            headers.append(("Content-Type", answer.content_type))
        start_response(f"{answer.status.value} {answer.status.phrase}", headers)
        return [answer.body]

    def _answer(self, method: str, path: str, environ: dict[str, Any]) -> Answer:
        handlers = self._routes.get(path)
        if handlers is None:
            return Answer.text(HTTPStatus.NOT_FOUND, "Not found.")
        if method not in handlers:
            allow = ("Allow", ", ".join(handlers))
            return Answer(HTTPStatus.METHOD_NOT_ALLOWED, b"Method not allowed.\n", headers=(allow,))
        try:
            return handlers[method](environ)
        except _BodyTooLarge:
            return Answer.text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request too large.")
        except (CredentialError, LedgerError) as exc:
            # Both messages name where a secret was looked for or what the database said, never a value.
            log.error("%s %s cannot be handled: %s", method, path, exc)
            return Answer.text(HTTPStatus.INTERNAL_SERVER_ERROR, "Temporarily unavailable; try again later.")

    # -- Twilio ------------------------------------------------------------------------------------------------

    def _status(self, environ: dict[str, Any]) -> Answer:
        params = _form(environ)
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
        url = self._called_url(environ)
        try:
            delivery = self._signed_by(url, params, signature).apply_status_callback(
                self.ledger, url, params, signature
            )
        except ChannelError:
            return Answer.text(HTTPStatus.FORBIDDEN, "Forbidden.", "refused: X-Twilio-Signature does not match")
        sid, status = params.get("MessageSid", "?"), params.get("MessageStatus", "?")
        recorded = f"recorded {delivery.state}" if delivery else "no such message"
        return Answer(HTTPStatus.NO_CONTENT, content_type=None, note=f"{sid} {status}: {recorded}")

    def _inbound(self, environ: dict[str, Any]) -> Answer:
        params = _form(environ)
        try:
            self._signed_by(self._called_url(environ), params, environ.get("HTTP_X_TWILIO_SIGNATURE", ""))
        except ChannelError:
            return Answer.text(HTTPStatus.FORBIDDEN, "Forbidden.", "refused: X-Twilio-Signature does not match")
        if "From" not in params:
            return Answer.text(HTTPStatus.BAD_REQUEST, "From is missing.")
        reply = handle_inbound(self.ledger, self.settings.practice, params["From"], params.get("Body", ""))
        response = ET.Element("Response")
        if reply is not None:
            ET.SubElement(response, "Message").text = reply
        twiml = ET.tostring(response, encoding="utf-8", xml_declaration=True)
        return Answer(HTTPStatus.OK, twiml, "text/xml; charset=utf-8", "replied" if reply else "no reply")

    def _signed_by(self, url: str, params: dict[str, str], signature: str) -> SmsChannel:
        """The SMS channel whose Twilio Auth Token signed this request.

        Raises ChannelError when none did; CredentialError when a token cannot be read.
        """
        for channel, token in zip(self.sms, self._twilio_tokens(), strict=True):
            if hmac.compare_digest(twilio_signature(token, url, params), signature):
                return channel
        raise ChannelError(", ".join(channel.instance for channel in self.sms), "X-Twilio-Signature does not match")

    def _twilio_tokens(self) -> list[SecretStr]:
        return [resolve(channel.config.credentials.auth_token) for channel in self.sms if channel.config.credentials]

    def _called_url(self, environ: dict[str, Any]) -> str:
        """The URL Twilio called, as it signed it: ``public_url`` with the request's path and query when given."""
        if self.public_url is None:
            return request_uri(environ)
        query = environ.get("QUERY_STRING")
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/;=,")
        return self.public_url + path + (f"?{query}" if query else "")

    # -- one-click unsubscribe ---------------------------------------------------------------------------------

    def _unsubscribe_page(self, environ: dict[str, Any]) -> Answer:
        token = _token(environ)
        try:
            _, request = self._verified(token)
        except TokenError as exc:
            return _bad_link(exc)
        # Posts back to this very URL (token included); the hidden field is what RFC 8058 clients send.
        form = (
            f'<form method="post" action="?t={html.escape(quote(token, safe=""))}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        practice = self.settings.practice.name
        return Answer.page(
            "Unsubscribe",
            f"Stop receiving emails from {practice} ({request.list_id})? Press the button to confirm.",
            form,
            "confirmation page",
        )

    def _unsubscribe(self, environ: dict[str, Any]) -> Answer:
        # The body RFC 8058 clients send (List-Unsubscribe=One-Click) is not required: the signed token is the proof.
        token = _token(environ)
        try:
            secret, _ = self._verified(token)
            request = apply_unsubscribe(self.ledger, secret, token)
        except TokenError as exc:
            return _bad_link(exc)
        practice = self.settings.practice.name
        return Answer.page(
            "Unsubscribed",
            f"You will receive no more emails from {practice} ({request.list_id}).",
            note=f"unsubscribed from {request.list_id}",
        )

    def _verified(self, token: str) -> tuple[SecretStr, Token]:
        """The ``unsubscribe_secret`` that signed ``token``, and what the token says.

        Raises TokenError when no newsletter's secret did; CredentialError when a secret cannot be read.
        """
        refusal = TokenError("no unsubscribe secret of this practice signed it")
        for secret in self._unsubscribe_secrets():
            try:
                return secret, verify_token(self.ledger, secret, token)
            except TokenError as exc:
                refusal = exc
        raise refusal

    def _unsubscribe_secrets(self) -> list[SecretStr]:
        return [resolve(n.config.unsubscribe_secret) for n in self.newsletters if n.config.unsubscribe_secret]


class _BodyTooLarge(Exception):
    """A request body over MAX_BODY: answered 413, never read."""


def _form(environ: dict[str, Any]) -> dict[str, str]:
    """The request's form-encoded body as a dict; blank values kept, since Twilio signs them too.

    Raises _BodyTooLarge when the body is over MAX_BODY.
    """
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        raise _BodyTooLarge
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _token(environ: dict[str, Any]) -> str:
    return parse_qs(environ.get("QUERY_STRING", "")).get("t", [""])[0]


def _bad_link(exc: TokenError) -> Answer:
    # The reason goes to the log only: the page says nothing that would help forge a token.
    return Answer.text(HTTPStatus.BAD_REQUEST, "This unsubscribe link is not valid.", f"refused: {exc.reason}")


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """wsgiref's handler without its access log: that line holds the query string, and with it a token."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the application logs each request itself

    def log_message(self, format: str, *args: Any) -> None:
        # Only malformed requests get here; their arguments would quote the request line.
        log.warning("refused a malformed request from %s", self.client_address[0])


def make_server(app: WSGIApplication, host: str = "127.0.0.1", port: int = 8088) -> WSGIServer:
    """A threaded HTTP server for ``app`` (a :class:`WebhookApp`, or one wrapped) on ``host:port`` (0: any free
    port); ``serve_forever`` runs it.

    Raises OSError when the address cannot be bound.
    """
    return wsgi_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)


def check_urls(settings: Settings, public_url: str) -> list[str]:
    """Where the config tells Twilio or subscribers to call other URLs than these endpoints at ``public_url``."""
    base = public_url.rstrip("/")
    configured: list[tuple[str, object, str]] = []
    for name, config in settings.channels.items():
        if isinstance(config, SmsConfig) and config.status_callback is not None:
            configured.append((f"channels.{name}.status_callback", config.status_callback, STATUS_PATH))
        if isinstance(config, NewsletterConfig) and config.unsubscribe_secret is not None:
            configured.append((f"channels.{name}.unsubscribe_url", config.unsubscribe_url, UNSUBSCRIBE_PATH))
    return [f"{key} is {url}, not {base}{path}" for key, url, path in configured if str(url) != base + path]
