"""The webhooks answer anything a client sends with 2xx, 3xx or 4xx, never 5xx: 4,000 requests drawn from a fixed seed
(methods, paths, queries, header values of any bytes a server passes on, bodies of any bytes or of forms, signed and
unsigned, tokens forged, signed over odd payloads or genuine) against the real application (carecast/webhooks.py,
its ASGI front included, as uvicorn calls it) over a real SQLite ledger, plus the same kinds of requests through
uvicorn itself.

A request a provider really signed (the Twilio fake's own signature function signs them here, never the code under
test) reaches the handlers' deepest paths: a status callback for a message the ledger knows, a text to the practice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import socket
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import pytest

from carecast.pipeline import make_channel
from carecast.webhooks import AsgiFront, Limits
from carecast_channels.newsletter import NewsletterChannel
from tests.providers.twilio import twilio_signature
from tests.test_webhooks import AUTH_TOKEN, ENV, MARIA_EMAIL, MARIA_SMS, PUBLIC, UNSUBSCRIBE_SECRET, Hooks, sid

SEED = 20261205
REQUESTS = 4000
#: Of them, drawn from another seed, sent over real sockets to uvicorn (h11 parses them first).
OVER_THE_WIRE = 300
#: Sent texts whose MessageSids signed status callbacks name (an unknown one is waited for, seconds each).
KNOWN_MESSAGES = 12
PATHS = ["/twilio/status", "/twilio/inbound", "/unsubscribe"]
METHODS = ["GET", "POST", "POST", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH"]
#: Bytes an HTTP/1.1 server (h11) lets through in a header value: visible ASCII, space, tab and obs-text.
HEADER_BYTES = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
WORDS = [
    "STOP",
    "stop",
    "Stop ",
    "START",
    "HELP",
    "UNSUBSCRIBE",
    "\uff33\uff34\uff2f\uff30",
    "stöp",
    "arrêt",
    "停止",
    "",
    "\u200bSTOP",
]


@dataclass
class Fuzzed:
    """One request as the ASGI server hands it over: method, raw path, query, headers and body."""

    method: str
    raw_path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    chunks: int = 1
    kind: str = field(default="", compare=False)


def text(rng: random.Random, longest: int = 40) -> str:
    """Any text: ASCII, Latin-1, other scripts, emoji, control characters (never a lone surrogate: not UTF-8)."""
    pools = [
        string.printable,
        "".join(map(chr, range(0xA0, 0x100))),
        "ąčęłńšžΩЖשلह中文字🙂🏳️‍🌈\u200b\u202e\ufeff",
        "".join(map(chr, range(0, 0x20))) + "\x7f",
    ]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, longest)))


def header_value(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.4:
        return bytes(rng.choice(HEADER_BYTES) for _ in range(rng.randint(0, 120)))
    if roll < 0.8:
        return text(rng).encode("utf-8").translate(None, b"\r\n\x00")  # what a client could put on the wire
    return base64.b64encode(rng.randbytes(20)) + rng.choice([b"", b"\xe9", b"\xff", "é".encode()])


def v1_token(payload: bytes, secret: str = UNSUBSCRIBE_SECRET) -> str:
    """A version 1 unsubscribe token over ``payload``, signed as the practice signs them (HMAC-SHA256 over a
    context string and the encoded payload), whatever the payload holds."""
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    mac = hmac.new(secret.encode(), b"carecast unsubscribe token\x00" + encoded.encode(), hashlib.sha256).digest()
    return f"{encoded}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def odd_payload(rng: random.Random) -> bytes:
    """JSON a genuine secret signed but CareCast never wrote: wrong types, huge or negative times, junk."""
    values: list[Any] = [
        1,
        0,
        "1",
        None,
        10**30,
        -(10**30),
        -1,
        2**63,
        1.5,
        float("1e308"),
        "newsletter",
        MARIA_EMAIL,
        [],
        {},
    ]
    shape = rng.random()
    if shape < 0.6:
        return json.dumps([rng.choice(values) for _ in range(rng.randint(0, 5))]).encode()
    if shape < 0.8:
        return json.dumps([1, text(rng), text(rng), rng.choice(values)]).encode()
    return rng.randbytes(rng.randint(0, 40))


class Generator:
    """Requests from one seed; ``tokens`` are genuine opaque unsubscribe tokens the ledger issued."""

    def __init__(self, seed: int, tokens: list[str]) -> None:
        self.rng = random.Random(seed)
        self.tokens = tokens

    def __iter__(self) -> Iterator[Fuzzed]:
        while True:
            yield self.one()

    def one(self) -> Fuzzed:
        rng = self.rng
        path = rng.choice(PATHS) if rng.random() < 0.85 else self.odd_path()
        method = rng.choice(METHODS)
        query = self.query(path)
        headers = [(b"host", b"hooks.oakviewpt.com")]
        body, kind = self.body(path, query, headers)
        headers += self.headers(body)
        rng.shuffle(headers)
        return Fuzzed(method, path, query, headers, body, chunks=rng.choice([1, 1, 1, 2, 5]), kind=kind)

    def odd_path(self) -> str:
        rng = self.rng
        choices = [
            "/",
            "//twilio/status",
            "/twilio/status/",
            "/TWILIO/STATUS",
            "/unsubscribe/../twilio/inbound",
            "/" + quote(text(self.rng, 20), safe="/"),
            "/%ff%fe/%00",
            "/" + "a" * rng.randint(1, 3000),
        ]
        return rng.choice(choices)

    def query(self, path: str) -> bytes:
        rng = self.rng
        roll = rng.random()
        if path != "/unsubscribe" or roll < 0.1:
            return rng.choice([b"", b"", b"a=1&a=2", quote(text(rng)).encode(), rng.randbytes(8).hex().encode()])
        if roll < 0.3 and self.tokens:
            token = rng.choice(self.tokens)
        elif roll < 0.5:
            token = v1_token(odd_payload(rng))
        elif roll < 0.6:
            token = v1_token(odd_payload(rng), secret="someone-elses-secret")
        else:
            token = rng.choice(
                [text(rng), "", ".", "..", "a.b", "\x00", "%00", "A" * rng.randint(1, 5000), rng.randbytes(24).hex()]
            )
        encoded = quote(token, safe="") if rng.random() < 0.8 else token.encode("utf-8").hex()
        extra = rng.choice(["", "&t=second", "&x=%ff", "&t", "&&=&"])
        return f"t={encoded}{extra}".encode("utf-8", "replace")

    def form(self, path: str) -> dict[str, str]:
        rng = self.rng
        fields = {name: text(rng) for name in rng.sample(["AccountSid", "ApiVersion", "SmsSid", "To", "Junk"], 2)}
        if path == "/twilio/status":
            fields["MessageSid"] = sid(rng.randrange(KNOWN_MESSAGES))
            fields["MessageStatus"] = rng.choice(["delivered", "read", "undelivered", "failed", "sent", text(rng)])
            fields["ErrorCode"] = rng.choice(["", "30007", "30003", text(rng, 10)])
        else:
            fields["From"] = rng.choice([MARIA_SMS, "+17735550123", "+1", "", text(rng, 20), "+1312555011\x00"])
            fields["Body"] = rng.choice(WORDS) + (text(rng) if rng.random() < 0.3 else "")
        if rng.random() < 0.3:
            del fields[rng.choice(sorted(fields))]
        return fields

    def body(self, path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[bytes, str]:
        """A body and what kind it is; a signed form adds its ``X-Twilio-Signature`` to ``headers``."""
        rng = self.rng
        roll = rng.random()
        if path.startswith("/twilio/") and roll < 0.45:
            fields = self.form(path)
            url = PUBLIC + path + (f"?{query.decode('latin-1')}" if query else "")
            headers.append((b"x-twilio-signature", twilio_signature(AUTH_TOKEN, url, fields).encode()))
            return urlencode(fields).encode(), "signed form"
        if roll < 0.7:
            fields = self.form(path) if path.startswith("/twilio/") else {"List-Unsubscribe": "One-Click"}
            headers.append((b"x-twilio-signature", header_value(rng)))
            return urlencode(fields, encoding=rng.choice(["utf-8", "latin-1"]), errors="replace").encode(), "form"
        if roll < 0.85:
            return rng.randbytes(rng.randint(0, 2000)), "bytes"
        return rng.choice([b"", b"=", b"&&&", b"%", b"%zz=%", b"a=%ff%fe", "é=ü".encode("latin-1")]), "odd form"

    def headers(self, body: bytes) -> list[tuple[bytes, bytes]]:
        rng = self.rng
        headers = []
        if rng.random() < 0.7:
            headers.append(
                (
                    b"content-type",
                    rng.choice(
                        [
                            b"application/x-www-form-urlencoded",
                            b"application/x-www-form-urlencoded; charset=koi8-r",
                            b"multipart/form-data; boundary=",
                            b"application/json",
                            header_value(rng),
                        ]
                    ),
                )
            )
        if rng.random() < 0.5:
            length = str(len(body)).encode()
            headers.append(
                (b"content-length", rng.choice([length, length, b"0", b"-1", b"abc", b"99999999999999999999", b""]))
            )
        for name in rng.sample([b"x-twilio-signature", b"cookie", b"x-forwarded-for", b"accept", b"user-agent"], 2):
            headers.append((name, header_value(rng)))
        return headers


async def call(app: AsgiFront, request: Fuzzed) -> int:
    """``request`` through the ASGI application as uvicorn would hand it over; the status answered."""
    body = request.body
    step = max(1, len(body) // request.chunks)
    pieces = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    messages = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1} for i, piece in enumerate(pieces)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": unquote(request.raw_path),  # as uvicorn decodes it
        "raw_path": request.raw_path.encode("ascii", "replace"),
        "query_string": request.query,
        "root_path": "",
        "headers": request.headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8088),
    }
    await app(scope, receive, send)
    [start] = [message for message in sent if message["type"] == "http.response.start"]
    return int(start["status"])


@pytest.fixture
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str) -> Iterator[Hooks]:
    """The webhooks (short links on) served over a ledger on SQLite and on PostgreSQL (which refuses a NUL in
    text)."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    # Short links on: any other GET /<code> is looked up as one.
    served = Hooks(tmp_path, PUBLIC, ledger_url=ledger_url, links={"domain": "go.oakviewpt.com"})
    served.sent_texts(*((f"+1312555{n:04d}", sid(n)) for n in range(KNOWN_MESSAGES)))
    yield served
    served.stop()


def test_4000_fuzzed_requests_never_get_a_5xx(hooks: Hooks) -> None:
    newsletter = make_channel(hooks.settings, "newsletter")
    assert isinstance(newsletter, NewsletterChannel)
    tokens = [hooks.ledger.issue_unsubscribe_token("newsletter", newsletter.list_id(), MARIA_EMAIL) for _ in range(3)]
    app = AsgiFront(hooks.server._front.app, Limits())
    answered: Counter[int] = Counter()
    server_errors: list[str] = []

    async def drive() -> None:
        for number, request in zip(range(REQUESTS), Generator(SEED, tokens), strict=False):
            try:
                status = await call(app, request)
            except Exception as exc:  # what uvicorn would answer 500 for
                status = 500
                server_errors.append(f"#{number} {request.kind} {request.method} {request.raw_path}: {exc!r}")
            else:
                if status >= 500:
                    server_errors.append(f"#{number} {request.kind} {request.method} {request.raw_path}: {status}")
            answered[status] += 1

    try:
        asyncio.run(drive())
    finally:
        app.workers.shutdown()
    assert not server_errors, f"{len(server_errors)} of {REQUESTS} got 5xx:\n" + "\n".join(server_errors[:30])
    assert sum(answered.values()) == REQUESTS
    # The fuzz reached past every guard: signed callbacks recorded, texts answered, pages shown, tokens refused.
    assert {200, 204, 400, 403, 404, 405} <= set(answered), answered


def test_a_non_ascii_signature_through_uvicorn_is_refused_not_a_server_error(hooks: Hooks) -> None:
    """Header bytes beyond ASCII, as a client puts them on the wire, reach the server as Latin-1 text."""
    for value in ["é".encode("latin-1"), "é".encode(), b"\xff" * 40, "签名".encode()]:
        with socket.create_connection(("127.0.0.1", hooks.server.server_port), timeout=10) as client:
            body = urlencode({"MessageSid": sid(1), "MessageStatus": "delivered"}).encode()
            client.sendall(
                b"POST /twilio/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                + b"X-Twilio-Signature: "
                + value
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]


def raw(request: Fuzzed) -> bytes:
    """``request`` as HTTP/1.1 bytes on one connection, with its true Content-Length (a false one would only make
    the server wait for the body's deadline)."""
    target = request.raw_path.encode("ascii", "replace") + (b"?" + request.query if request.query else b"")
    headers = [(name, value) for name, value in request.headers if name != b"content-length"]
    lines = [request.method.encode() + b" " + target + b" HTTP/1.1", b"connection: close"]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"content-length: " + str(len(request.body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + request.body


def test_fuzzed_requests_over_the_wire_never_get_a_5xx(hooks: Hooks) -> None:
    server_errors = []
    for number, request in zip(range(OVER_THE_WIRE), Generator(SEED + 1, []), strict=False):
        with socket.create_connection(("127.0.0.1", hooks.server.server_port), timeout=30) as client:
            client.sendall(raw(request))
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b"no answer"
        if not status.isdigit() or int(status) >= 500:
            server_errors.append(f"#{number} {request.kind} {request.method} {request.raw_path}: {status!r}")
    assert not server_errors, "\n".join(server_errors[:30])
