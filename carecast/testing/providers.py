"""Fake provider servers for tests (part of the plugin kit): real local servers that speak a provider's contract.

A fake subclasses :class:`LocalHttpServer` and answers each :class:`RecordedRequest` in ``handle`` with a
:class:`Reply`; CareCast's own fakes (``tests/providers/``) are built this way. Each server binds a free port on
127.0.0.1, records what arrived on the wire and shuts down cleanly when its ``with`` block ends (:class:`Serving`).
This module holds the plumbing the HTTP fakes share: a threaded ``http.server`` wrapper that parses bodies (JSON,
form, multipart), records every request, and can be told to answer the next requests with forced responses (fault
injection) before the provider logic sees them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import socket
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeVar

from requests.structures import CaseInsensitiveDict

LOOPBACK = "127.0.0.1"

ServerT = TypeVar("ServerT")


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart body."""

    filename: str | None
    content_type: str
    content: bytes


@dataclass(frozen=True)
class RecordedRequest:
    """A request as it arrived on the wire.

    ``body`` is the parsed body: a dict for JSON objects, ``{name: value}`` for form bodies (the last value wins,
    as providers read them), ``{name: str | UploadedFile}`` for multipart bodies, ``None`` when empty.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: CaseInsensitiveDict[str]
    raw: bytes
    body: Any
    #: Every query parameter, repeated ones included (``query`` keeps the last of each).
    query_pairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Reply:
    """What a server answers: a status, a body (a dict or list is sent as JSON) and extra headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        """The body as bytes and its content type."""
        if self.body is None:
            return b"", "application/json"
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


#: A forced reply that answers nothing: the connection is closed without a byte (a proxy or the network dropping
#: it). ``status`` 0 before the provider handles the request; see :class:`Storm` for one dropped after it acted.
DROP = Reply(0)


@dataclass
class Storm:
    """Faults on a share of the requests ``hits`` accepts, drawn from a seeded generator so a failing run repeats:
    a 500 or a 429 without a provider code (nothing done), a connection dropped before the provider acts, or one
    dropped after it acted (the answer lost). ``injected`` counts what was injected, by kind."""

    rate: float
    hits: Callable[[RecordedRequest], bool]
    seed: int = 17
    kinds: tuple[str, ...] = ("500", "429", "drop", "lost")
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def draw(self, request: RecordedRequest) -> str | None:
        """The fault for ``request``: "500", "429", "drop", "lost", or None for none."""
        if not self.hits(request) or self._random.random() >= self.rate:
            return None
        kind = self._random.choice(self.kinds)
        self.injected[kind] = self.injected.get(kind, 0) + 1
        return kind


def parse_body(content_type: str, raw: bytes) -> Any:
    """Parse a request body by its content type; unknown types stay bytes.

    Raises:
        ValueError: the body does not match its declared content type (e.g. malformed JSON).
    """
    if not raw:
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json":
        return json.loads(raw)
    if mime == "application/x-www-form-urlencoded":
        return dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
    if mime == "multipart/form-data":
        # The email package is the stdlib's maintained MIME parser; it needs the header to find the boundary.
        message = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        fields: dict[str, str | UploadedFile] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                raise ValueError(f"multipart field {name!r} is not a leaf part")
            filename = part.get_filename()
            if filename is None:
                fields[str(name)] = payload.decode()
            else:
                # Without a part Content-Type the email package assumes text/plain; HTTP clients mean octets.
                content_type = part.get_content_type() if "Content-Type" in part else "application/octet-stream"
                fields[str(name)] = UploadedFile(filename, content_type, payload)
        return fields
    return raw


class Serving(ABC):
    """A server that is its own ``with`` block: started on entry, stopped on exit."""

    @abstractmethod
    def start(self) -> Self:
        """Start serving in the background and return the server. Idempotent.

        Raises:
            OSError: the port cannot be bound.
        """

    @abstractmethod
    def stop(self) -> None:
        """Stop serving and release the port. Idempotent."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LocalHttpServer(Serving):
    """A threaded HTTP server on a free loopback port that records requests and replays forced responses.

    Subclasses implement :meth:`handle`; :meth:`finish` may decorate every reply (forced ones included).
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._forced: deque[Reply] = deque()
        self._stall: tuple[int, str, str] | None = None
        self._released = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._late: tuple[Callable[[RecordedRequest], bool], float] | None = None
        self._storm: Storm | None = None
        #: The thread that held back a late answer (see :meth:`answer_late`), once one did.
        self.late: threading.Thread | None = None
        self._watchers: list[Callable[[RecordedRequest], None]] = []

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and serve in a daemon thread. Idempotent.

        Raises:
            OSError: the port cannot be bound.
        """
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer((LOOPBACK, self._port), _handler_for(self))
            self._httpd.daemon_threads = True
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
            self._thread.daemon = True
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Idempotent."""
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join()
            self._httpd = None
            self._thread = None

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: the server is not started.
        """
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``, without a trailing slash."""
        return f"http://{LOOPBACK}:{self.port}"

    # --- recording and fault injection -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """The recorded requests with this method and path."""
        return [r for r in self.requests if r.method == method and r.path == path]

    def watch(self, watcher: Callable[[RecordedRequest], None]) -> None:
        """Call ``watcher`` with each request as it arrives, before it is answered (the contract kit looks at the
        ledger then: was the request claimed before it was sent?)."""
        with self._lock:
            self._watchers.append(watcher)

    def force(self, *replies: Reply) -> None:
        """Answer the next ``len(replies)`` requests with these replies, in order, whatever they ask."""
        with self._lock:
            self._forced.extend(replies)

    def storm(self, storm: Storm | None) -> None:
        """Inject ``storm``'s faults from now on (None: stop); forced replies still come first."""
        with self._lock:
            self._storm = storm

    def answer_late(self, when: Callable[[RecordedRequest], bool], delay: float) -> None:
        """Hold back the answer to the first request ``when`` accepts (asked once it was handled) for ``delay``
        seconds: a client that gives up sooner loses the answer to a request the provider acted on. ``late`` is
        the thread that waited; join it before looking at what the server holds."""
        self._late = (when, delay)

    def stall(self, after: int | None, method: str = "POST", path: str = "") -> None:
        """Leave every ``method path`` request after the first ``after`` unanswered until the server stops: it is
        recorded but never handled, as if it had not reached the provider, while its sender waits (and may die).
        ``None``: answer every new request again."""
        with self._lock:
            self._stall = None if after is None else (after, method, path)

    def _stalled(self, request: RecordedRequest) -> bool:
        with self._lock:
            if self._stall is None:
                return False
            after, method, path = self._stall
            return sum(r.method == method and r.path == path for r in self._requests) > after and (
                request.method,
                request.path,
            ) == (method, path)

    def _take_forced(self) -> Reply | None:
        with self._lock:
            return self._forced.popleft() if self._forced else None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # --- provider logic --------------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        """Answer one request as the provider would."""
        raise NotImplementedError

    def finish(self, request: RecordedRequest, reply: Reply) -> Reply:
        """Decorate every reply before it is sent; the default sends it as is."""
        return reply

    def after_reply(self, request: RecordedRequest, reply: Reply) -> None:
        """Run once the reply is on the wire (e.g. to send webhooks); the default does nothing."""

    def dispatch(self, request: RecordedRequest) -> Reply:
        """Record the request, then answer it with a forced reply if one is queued, else with :meth:`handle`."""
        self._record(request)
        with self._lock:
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher(request)
        if self._stalled(request):
            self._released.wait()
            return Reply(503, {"error": "stalled until the server stopped"})
        forced = self._take_forced()
        with self._lock:
            fault = None if forced is not None or self._storm is None else self._storm.draw(request)
        if (forced is not None and not forced.status) or fault == "drop":
            return DROP
        if fault in ("500", "429"):
            forced = Reply(int(fault or 0), {"error": "injected by a storm"})
        reply = self.finish(request, forced if forced is not None else self.handle(request))
        if fault == "lost":
            return DROP
        if self._late is not None and self.late is None and self._late[0](request):
            self.late = threading.current_thread()
            time.sleep(self._late[1])
        return reply


def _handler_for(server: LocalHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in one send (a buffered writer, flushed once), without Nagle's algorithm: otherwise
        # the body waits ~40 ms for the client's delayed ACK of the headers, and benchmarks would time the fake.
        wbufsize = -1
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            split = urllib.parse.urlsplit(self.path)
            headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(self.headers.items())
            try:
                body = parse_body(headers.get("Content-Type", ""), raw)
            except ValueError:
                body = raw
            request = RecordedRequest(
                method=self.command,
                path=split.path,
                query=dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
                headers=headers,
                raw=raw,
                body=body,
                query_pairs=tuple(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
            )
            reply = server.dispatch(request)
            if not reply.status:  # DROP: close without answering
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            payload, content_type = reply.encoded()
            self.send_response(reply.status)
            sent = CaseInsensitiveDict(reply.headers)
            sent.setdefault("Content-Type", content_type)
            for name, value in sent.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
            server.after_reply(request, reply)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            # Test output stays quiet; the recorded requests are the log.
            pass

    return Handler


def serve_by_hand(
    description: str, make: Callable[[int], AbstractContextManager[ServerT]], banner: Callable[[ServerT], str]
) -> None:
    """Command-line entry for ``python -m tests.providers.<name> --port N``: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 picks a free one)")
    args = parser.parse_args()
    with make(args.port) as server:
        print(banner(server), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
