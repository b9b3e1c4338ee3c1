"""The practice's public endpoints: whatever routes the configured channels declare, served by uvicorn.

Each channel class contributes its :class:`~carecast.channel.Route` objects through ``Channel.routes`` (the
built-in SMS channel: Twilio's status callbacks and inbound STOP / START / HELP; the newsletter: one-click
unsubscribe); with ``links`` configured, any other ``GET /<code>`` is a short link (:mod:`carecast.links`).
:class:`WebhookApp` dispatches a request to its route, with the open practice, and answers 404 for an
unknown path, 405 for a known path with another method, 413 for a body over ``MAX_BODY`` (never read), and 500
when a secret or the ledger fails.

Providers sign the URL they called, so behind a proxy or tunnel a handler sees ``public_url`` (what the provider
was given, e.g. ``https://hooks.oakviewpt.com``) plus the request's path and query; without one, the URL the
request itself names.

:class:`WebhookApp` is a WSGI application, so any WSGI server can serve it; :func:`make_server` serves it with
uvicorn behind :class:`AsgiFront`, which reads each body on the event loop within a size limit and a deadline
before a worker thread runs the handler, so clients that stall cost a socket, never a thread. Headers are bounded
by h11's size limit and a deadline, idle connections by ``timeout_keep_alive``, the number of connections and
requests by ``limit_concurrency`` (beyond it: 503). Each request is logged in one line: method, path without its
query (tokens stay out of logs), status and time; never a phone number, an address or a secret.
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from wsgiref.util import request_uri

import uvicorn
from uvicorn.middleware.wsgi import build_environ
from uvicorn.protocols.http.h11_impl import H11Protocol

from carecast import links
from carecast.channel import Channel, PracticeContext, Request, Response, Route, make_channel
from carecast.config import Settings
from carecast.errors import ConfigError, CredentialError, LedgerError
from carecast.ledger import Ledger

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from uvicorn._types import HTTPRequestEvent

log = logging.getLogger(__name__)

#: Providers' forms and a one-click POST are a few hundred bytes; anything far larger is refused unread.
MAX_BODY = 64 * 1024

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class Limits:
    """What one client may cost the server. A request's headers must arrive within ``header_timeout`` seconds of
    its connection and be at most ``max_header_bytes``; its body within ``body_timeout`` seconds of its headers;
    an idle keep-alive connection is closed after ``keep_alive`` seconds; beyond ``max_concurrency`` connections
    or requests at once the server answers 503; ``workers`` threads run handlers (a status callback may wait a
    few seconds for its send to be recorded)."""

    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024
    body_timeout: float = 10.0
    keep_alive: float = 5.0
    max_concurrency: int = 1000
    workers: int = 16


class WebhookApp:
    """The WSGI application of every route the practice's channels declare, for its settings and ledger."""

    def __init__(self, settings: Settings, ledger: Ledger, public_url: str | None = None) -> None:
        """Raises CredentialError when a secret the routes need cannot be read; ConfigError when no configured
        channel declares a route, or two declare the same one; ChannelError when a channel plugin cannot be loaded.
        """
        self.public_url = public_url.rstrip("/") if public_url else None
        channels = {name: make_channel(settings, name) for name in settings.channels}
        self.practice = PracticeContext(settings, ledger, channels)
        self._routes: dict[str, dict[str, Route]] = {}
        self._links = links.Redirects(settings, ledger) if settings.links else None
        for route in declared_routes(channels.values()):
            handlers = self._routes.setdefault(route.path, {})
            if route.method in handlers:
                problem = f"two channel types declare {route.method} {route.path}"
                raise ConfigError(settings.file, [("channels", problem)])
            handlers[route.method] = route
        if not self._routes and settings.links is None:
            raise ConfigError(
                settings.file,
                [
                    (
                        "channels",
                        "a channel with webhook routes to serve (an sms channel with credentials or a newsletter "
                        "with unsubscribe_secret)",
                    )
                ],
            )

    @property
    def endpoints(self) -> list[tuple[str, str]]:
        """What is served: (methods, path) pairs such as ``("POST", "/twilio/status")``."""
        served = [("/".join(handlers), path) for path, handlers in self._routes.items()]
        return served + ([("GET", "/<code> (short links)")] if self.practice.settings.links else [])

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

    def _answer(self, method: str, path: str, environ: dict[str, Any]) -> Response:
        handlers = self._routes.get(path)
        if handlers is None:
            return self._short_link(method, path, environ) or Response.text(HTTPStatus.NOT_FOUND, "Not found.")
        if method not in handlers:
            allow = ("Allow", ", ".join(handlers))
            return Response(HTTPStatus.METHOD_NOT_ALLOWED, b"Method not allowed.\n", headers=(allow,))
        body = _body(environ)
        if body is None:
            return Response.text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request too large.")
        request = Request(
            method=method,
            path=path,
            query=environ.get("QUERY_STRING", ""),
            url=self._called_url(environ),
            headers={key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key[:5] == "HTTP_"},
            body=body,
        )
        try:
            return handlers[method].handler(request, self.practice)
        except (CredentialError, LedgerError) as exc:
            # Both messages name where a secret was looked for or what the database said, never a value.
            log.error("%s %s cannot be handled: %s", method, path, exc)
            return Response.text(HTTPStatus.INTERNAL_SERVER_ERROR, "Temporarily unavailable; try again later.")

    def _short_link(self, method: str, path: str, environ: dict[str, Any]) -> Response | None:
        """A short link's redirect (``links``), or None when ``path`` is not one; answered 500 when the ledger
        fails, as a route's would be."""
        if self._links is None:
            return None
        try:
            return self._links.answer(method, path, environ.get("HTTP_USER_AGENT", ""))
        except LedgerError as exc:
            log.error("%s %s cannot be handled: %s", method, path, exc)
            return Response.text(HTTPStatus.INTERNAL_SERVER_ERROR, "Temporarily unavailable; try again later.")

    def close(self) -> None:
        """Count the clicks still queued (the short links' writer); the server has stopped."""
        if self._links is not None:
            self._links.close()

    def _called_url(self, environ: dict[str, Any]) -> str:
        """The URL the caller called, as a provider signs it: ``public_url`` with the request's path and query when
        given."""
        if self.public_url is None:
            return request_uri(environ)
        query = environ.get("QUERY_STRING")
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/;=,")
        return self.public_url + path + (f"?{query}" if query else "")


def declared_routes(channels: Iterable[Channel]) -> list[Route]:
    """The routes of every channel class among ``channels``, each class asked once with all its instances.

    Raises CredentialError when a secret a route needs cannot be read.
    """
    by_class: dict[type[Channel], list[Channel]] = {}
    for channel in channels:
        by_class.setdefault(type(channel), []).append(channel)
    return [route for cls, instances in by_class.items() for route in cls.routes(instances)]


def _body(environ: dict[str, Any]) -> bytes | None:
    """The request's body; None when it is over MAX_BODY (then it is not read)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return None
    return bytes(environ["wsgi.input"].read(length)) if length > 0 else b""


def check_urls(settings: Settings, public_url: str) -> list[str]:
    """Where the config tells providers or subscribers to call other URLs than these endpoints at ``public_url``.

    Raises CredentialError as :class:`WebhookApp` does.
    """
    base = public_url.rstrip("/")
    channels = [make_channel(settings, name) for name in settings.channels]
    announced = {(key, url, route.path) for route in declared_routes(channels) for key, url in route.announced}
    return [f"{key} is {url}, not {base}{path}" for key, url, path in sorted(announced) if url != base + path]


class AsgiFront:
    """An ASGI application in front of a WSGI one: reads each request's body on the event loop, at most
    ``max_body`` bytes within ``limits.body_timeout`` seconds (else 413 or 408, and the WSGI application never
    sees it), then runs the WSGI application in one of ``limits.workers`` threads with the body in memory."""

    def __init__(self, app: WSGIApplication, limits: Limits, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.limits = limits
        self.max_body = max_body
        self.workers = ThreadPoolExecutor(limits.workers, thread_name_prefix="webhook")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # no lifespan or websocket: the server runs with lifespan off
        declared = dict(scope["headers"]).get(b"content-length", b"")
        # A declared length over the limit is left unread: the WSGI application answers 413 and logs it.
        oversized = declared.isdigit() and int(declared) > self.max_body
        body = b""
        if not oversized:
            try:
                async with asyncio.timeout(self.limits.body_timeout):
                    body = await self._read(receive)
            except TimeoutError:
                await _refuse(scope, send, HTTPStatus.REQUEST_TIMEOUT, "Request body too slow.")
                return
            except _TooLarge:
                await _refuse(scope, send, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request too large.")
                return
            except _Gone:
                return
        first: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": False}
        environ = build_environ(scope, first, io.BytesIO(body))
        environ["SERVER_PORT"] = str(environ["SERVER_PORT"])  # uvicorn leaves an int; WSGI (PEP 3333) says str
        if not oversized:  # a chunked body declared no length: the application reads what was received
            environ["CONTENT_LENGTH"] = str(len(body))
        status, headers, content = await asyncio.get_running_loop().run_in_executor(self.workers, self._run, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _read(self, receive: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    def _run(self, environ: MutableMapping[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        answered: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answered[:] = [
                int(status.split(" ", 1)[0]),
                [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            ]

        chunks = self.app(environ, start_response)  # type: ignore[arg-type]
        try:
            content = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return answered[0], answered[1], content


class _TooLarge(Exception):
    """A body that grew over the limit while it was read (no length declared)."""


class _Gone(Exception):
    """The client disconnected before its body was complete: there is no one to answer."""


async def _refuse(scope: Any, send: Any, status: HTTPStatus, message: str) -> None:
    """Answer ``status`` before the application saw the request, logged like the application's own lines."""
    log.info("%s %s %d refused: %s", scope["method"], scope["path"], status.value, message)
    body = f"{message}\n".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status.value, "headers": [*headers, (b"connection", b"close")]}
    )
    await send({"type": "http.response.body", "body": body})


class _HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request's headers are not complete within the header
    timeout of its opening (or of its last response): uvicorn bounds their size, and how long a connection may sit
    idle, but not how slowly headers may trickle in."""

    header_timeout: float = Limits.header_timeout

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._expect_headers(after=None)

    def on_response_complete(self) -> None:
        finished = self.cycle
        super().on_response_complete()
        self._expect_headers(after=finished)

    def _expect_headers(self, after: object) -> None:
        self.loop.call_later(self.header_timeout, self._drop_if_still, after)

    def _drop_if_still(self, after: object) -> None:
        # No new request cycle since `after`: its headers have not all arrived.
        if self.cycle is after and not self.transport.is_closing():
            log.info("closed a connection whose request headers did not arrive in time")
            self.transport.close()


class WebhookServer:
    """uvicorn serving a WSGI application (a :class:`WebhookApp`, or one wrapped) through :class:`AsgiFront`, on a
    socket bound at construction, with the interface of the standard library's servers: ``serve_forever``
    (returns on ``shutdown`` or Ctrl-C), ``shutdown`` from another thread, ``server_close``."""

    def __init__(self, app: WSGIApplication, host: str, port: int, limits: Limits) -> None:
        """Raises OSError when the address cannot be bound."""
        self.socket = socket.create_server((host, port), backlog=2048)  # uvicorn's own default
        self.server_port: int = self.socket.getsockname()[1]
        protocol = type("HeaderDeadline", (_HeaderDeadline,), {"header_timeout": limits.header_timeout})
        self._front = AsgiFront(app, limits)
        config = uvicorn.Config(
            self._front,
            http=protocol,
            lifespan="off",
            proxy_headers=False,  # the URL a provider signed comes from public_url, never from a client's headers
            access_log=False,  # its line would hold the query string, and with it an unsubscribe token
            log_config=None,
            log_level=logging.WARNING,
            h11_max_incomplete_event_size=limits.max_header_bytes,
            timeout_keep_alive=int(limits.keep_alive),
            limit_concurrency=limits.max_concurrency,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._stopped = threading.Event()

    def serve_forever(self, poll_interval: float = 0.1) -> None:
        """Serve until ``shutdown`` (or Ctrl-C, re-raised as KeyboardInterrupt once the server has stopped)."""
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._front.workers.shutdown(wait=False)
            self._stopped.set()

    def shutdown(self) -> None:
        self._server.should_exit = True
        self._stopped.wait(10)

    def server_close(self) -> None:
        self.socket.close()

    def __enter__(self) -> WebhookServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server_close()


def make_server(
    app: WSGIApplication, host: str = "127.0.0.1", port: int = 8088, limits: Limits | None = None
) -> WebhookServer:
    """A uvicorn server for ``app`` on ``host:port`` (0: any free port); ``serve_forever`` runs it.

    Raises OSError when the address cannot be bound.
    """
    return WebhookServer(app, host, port, limits or Limits())
