"""A local SMTP submission server (aiosmtpd) that records what a newsletter sender delivers.

It requires AUTH (LOGIN or PLAIN) with the configured username and password before ``MAIL``. Without
``starttls`` it allows AUTH in plain text on 127.0.0.1; with ``starttls=True`` it offers STARTTLS with a
certificate issued at runtime by a throwaway CA (``trustme``; the key file is written briefly to ``cert_dir``)
and refuses AUTH and mail until TLS is on; clients trust it through :meth:`SmtpServer.client_ssl_context`.
Recipients listed in ``bounce`` are refused at ``RCPT`` with 550; :meth:`SmtpServer.force_data_replies` makes
the next ``DATA`` commands fail (e.g. 451); :meth:`SmtpServer.drop_connection` drops the client's connection at a
stage of a message (its ``MAIL``, its ``RCPT``, once its data arrived but not taken, once taken but not answered);
:meth:`SmtpServer.storm` meets a seeded share of the transactions with a transient reply or a dropped connection
(:class:`SmtpStorm`).
The server records every accepted message and how many connections were opened; :meth:`SmtpServer.watch` shows
each one as it is taken, before the client hears so (the contract kit's :class:`carecast.testing.FakeProvider`).

Run by hand with ``python -m tests.providers.smtp --port 8026``.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal, Self, cast

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.providers import LOOPBACK, Serving, serve_by_hand


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message: the envelope, the bytes as sent, who authenticated, and whether TLS was on."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    username: str
    tls: bool

    def parsed(self) -> EmailMessage:
        """The message parsed with the modern email policy."""
        return cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(self.raw))


#: Where :meth:`SmtpServer.drop_connection` drops a connection: at ``MAIL`` or ``RCPT`` (nothing of the message
#: sent yet), once the message's data arrived but before it is taken (``data``), or once it is taken and recorded but
#: before the client hears so (``queued``).
DropStage = Literal["mail", "rcpt", "data", "queued"]

#: The replies of an :class:`SmtpStorm`: RFC 5321's transient ones, the server keeping nothing of the message. After
#: a 421 the server closes the connection, as the RFC says it does.
STORM_REPLIES = {
    "421": "421 4.3.2 Service not available, closing transmission channel",
    "451": "451 4.3.0 Local error in processing, try again later",
    "452": "452 4.3.1 Insufficient system storage",
}
#: What an :class:`SmtpStorm` may do to a transaction, ``"<what> <stage>"`` (:data:`DropStage`): a transient reply at
#: ``MAIL``, ``RCPT`` or once the data arrived (``data``, the message not kept), or a dropped connection at any stage
#: (``queued``: after the message was kept).
STORM_KINDS = (
    "421 mail",
    "421 rcpt",
    "421 data",
    "451 rcpt",
    "451 data",
    "452 data",
    "drop mail",
    "drop rcpt",
    "drop data",
    "drop queued",
)


@dataclass
class SmtpStorm:
    """Faults on a share ``rate`` of the mail transactions, drawn at each ``MAIL`` from a seeded generator so a failing
    run repeats (the SMTP counterpart of :class:`carecast.testing.providers.Storm`); ``injected`` counts what was
    injected, by kind (:data:`STORM_KINDS`)."""

    rate: float
    seed: int = 17
    kinds: tuple[str, ...] = STORM_KINDS
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def draw(self) -> str | None:
        """The fault for the next transaction, one of ``kinds``, or None for none."""
        if self._random.random() >= self.rate:
            return None
        kind = self._random.choice(self.kinds)
        self.injected[kind] = self.injected.get(kind, 0) + 1
        return kind


async def _hang_up(server: SMTP) -> None:
    """Drop the client's connection with no reply; aiosmtpd cancels the waiting handler as the connection goes."""
    assert server.transport is not None
    server.transport.close()
    await asyncio.Event().wait()


class _Recorder:
    """aiosmtpd handler: requires AUTH before MAIL, refuses bounced recipients, replays forced DATA replies, injects
    the storm's faults and records the rest."""

    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner
        # The storm's fault of each transaction in progress, drawn at its MAIL; aiosmtpd starts a new envelope with
        # every transaction, so a fault never outlives its own.
        self._faults: weakref.WeakKeyDictionary[Envelope, str] = weakref.WeakKeyDictionary()

    async def _storm(self, server: SMTP, envelope: Envelope, stage: DropStage) -> str | None:
        """The transient reply the transaction's storm fault gives at ``stage``, if it is there; a dropped connection
        (and a 421's, once said) never returns."""
        what, _, at = self._faults.get(envelope, "").partition(" ")
        if at != stage:
            return None
        if what == "421":
            await server.push(STORM_REPLIES[what])
        if what in ("drop", "421"):
            await _hang_up(server)
        return STORM_REPLIES[what]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        # Enforced here rather than with aiosmtpd's auth_required, which warns whenever AUTH may run without TLS:
        # plain-text AUTH on 127.0.0.1 is the point of the non-TLS mode.
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        if (fault := self.owner._draw_fault()) is not None:
            self._faults[envelope] = fault
        if (reply := await self._storm(server, envelope, "mail")) is not None:
            return reply
        if self.owner._dropping("mail"):
            await _hang_up(server)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.owner.bounce:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if (reply := await self._storm(server, envelope, "rcpt")) is not None:
            return reply
        if self.owner._dropping("rcpt"):
            await _hang_up(server)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.owner._stalled():
            await asyncio.Event().wait()  # never answered: the client waits until it dies or the server stops
        if (storm_reply := await self._storm(server, envelope, "data")) is not None:
            return storm_reply
        if self.owner._dropping("data"):
            await _hang_up(server)
        reply = self.owner._accept(session, envelope)
        await self._storm(server, envelope, "queued")  # only a drop happens there
        if self.owner._dropping("queued"):
            await _hang_up(server)
        return reply


class _Controller(Controller):
    """A Controller that binds a free port (port 0) and counts connections."""

    def __init__(self, owner: SmtpServer, **kwargs: Any) -> None:
        super().__init__(_Recorder(owner), hostname=LOOPBACK, port=0, **kwargs)
        self.owner = owner

    def _create_server(self) -> Any:
        async def bind() -> asyncio.AbstractServer:
            server = await self.loop.create_server(self._factory_invoker, host=self.hostname, port=self.port)
            # aiosmtpd connects to self.port to finish starting, so it must hold the port the OS picked.
            self.port = server.sockets[0].getsockname()[1]
            return server

        return bind()

    def factory(self) -> SMTP:
        self.owner._count_connection()
        return super().factory()


class SmtpServer(Serving):
    """An authenticated SMTP server on a free loopback port; ``with SmtpServer() as smtp: smtp.port``."""

    def __init__(
        self,
        *,
        username: str = "carecast",
        password: str = "test-smtp-password",
        starttls: bool = False,
        bounce: Iterable[str] = (),
        cert_dir: Path | None = None,
        port: int = 0,
    ) -> None:
        self.username = username
        self.password = password
        self.starttls = starttls
        self.cert_dir = None if cert_dir is None else str(cert_dir)
        self.bounce = {address.lower() for address in bounce}
        self._requested_port = port
        self._ca = trustme.CA()
        self._lock = threading.Lock()
        self._messages: list[ReceivedMessage] = []
        self._connections = 0
        # None lets one DATA through normally: a forced reply can come mid-batch.
        self._data_replies: deque[str | None] = deque()
        self._controller: _Controller | None = None
        self._stall_after: int | None = None
        self._data_commands = 0
        # Per stage, like the forced DATA replies: False lets one pass, True drops the connection there.
        self._drops: dict[str, deque[bool]] = {}
        self._dropped = 0
        self._storm_rule: SmtpStorm | None = None
        self._watchers: list[Callable[[ReceivedMessage], None]] = []

    # --- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving in a background thread. Idempotent.

        Raises:
            OSError: the port cannot be bound.
        """
        if self._controller is None:
            tls_context = None
            if self.starttls:
                tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                # ssl loads a key only from a file: a short-lived one, in cert_dir when given (tests pass tmp_path).
                pem = self._ca.issue_cert(LOOPBACK, "localhost").private_key_and_cert_chain_pem
                with pem.tempfile(dir=self.cert_dir) as path:
                    tls_context.load_cert_chain(path)
            controller = _Controller(
                self,
                tls_context=tls_context,
                require_starttls=self.starttls,
                auth_require_tls=self.starttls,
                authenticator=self._authenticate,
            )
            if self._requested_port:
                controller.port = self._requested_port
            controller.start()
            with self._lock:
                # The Controller's own readiness probe is not a client connection.
                self._connections = 0
            self._controller = controller
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Idempotent."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def host(self) -> str:
        """The address to connect to."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: the server is not started.
        """
        if self._controller is None:
            raise RuntimeError("SmtpServer is not started")
        return int(self._controller.port)

    @property
    def url(self) -> str:
        """``smtp://host:port``: where a client connects (as the contract kit hands a fake's address on)."""
        return f"smtp://{self.host}:{self.port}"

    def ca_pem(self) -> bytes:
        """The PEM of the CA that issued the server's certificate, for clients configured with a CA file."""
        return self._ca.cert_pem.bytes()

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's runtime certificate (for ``starttls(context=...)``)."""
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context

    # --- recording and fault injection -------------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Accepted messages, oldest first (a snapshot)."""
        with self._lock:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """How many client connections were opened."""
        with self._lock:
            return self._connections

    def watch(self, watcher: Callable[[ReceivedMessage], None]) -> None:
        """Call ``watcher`` with each message once it is taken and recorded, before the client is told so."""
        with self._lock:
            self._watchers.append(watcher)

    def force_data_replies(self, *replies: str, after: int = 0) -> None:
        """Answer the next ``DATA`` commands with these replies, e.g. ``"451 4.3.0 Try again later"``, once
        ``after`` more messages have been accepted normally."""
        with self._lock:
            self._data_replies.extend([None] * after)
            self._data_replies.extend(replies)

    def drop_connection(self, at: DropStage, *, after: int = 0, times: int = 1) -> None:
        """Drop the client's connection, without a reply, the next ``times`` times a message reaches stage ``at``
        (:data:`DropStage`), once ``after`` more have passed it normally."""
        with self._lock:
            self._drops.setdefault(at, deque()).extend([False] * after + [True] * times)

    def storm(self, storm: SmtpStorm | None) -> None:
        """Inject ``storm``'s faults into the transactions begun from now on (None: stop); the other injected faults
        (forced ``DATA`` replies, dropped connections) still come when the storm leaves a transaction alone."""
        with self._lock:
            self._storm_rule = storm

    def _draw_fault(self) -> str | None:
        with self._lock:
            return None if self._storm_rule is None else self._storm_rule.draw()

    def _dropping(self, stage: DropStage) -> bool:
        with self._lock:
            waiting = self._drops.get(stage)
            drop = waiting.popleft() if waiting else False
            self._dropped += drop
            return drop

    @property
    def dropped(self) -> int:
        """How many connections :meth:`drop_connection` dropped."""
        with self._lock:
            return self._dropped

    def stall_data(self, after: int | None) -> None:
        """Leave every ``DATA`` after the first ``after`` without an answer (the message is not taken), as a server
        that hangs mid-batch: its client waits until it dies or the server stops. ``None``: answer again."""
        with self._lock:
            self._stall_after = after

    @property
    def data_commands(self) -> int:
        """How many ``DATA`` commands arrived, answered or not."""
        with self._lock:
            return self._data_commands

    def _stalled(self) -> bool:
        with self._lock:
            self._data_commands += 1
            return self._stall_after is not None and self._data_commands > self._stall_after

    def _count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            self.username.encode(),
            self.password.encode(),
        )
        # handled=False makes aiosmtpd answer 535 itself; the default leaves the client waiting for a reply.
        return AuthResult(success=ok, handled=False, auth_data=self.username if ok else None)

    def _accept(self, session: Session, envelope: Envelope) -> str:
        with self._lock:
            forced = self._data_replies.popleft() if self._data_replies else None
            if forced is not None:
                return forced
            message = ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=envelope.original_content or b"",
                username=str(session.auth_data),
                tls=session.ssl is not None,
            )
            self._messages.append(message)
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher(message)
        return "250 2.0.0 OK: queued"


def _banner(server: SmtpServer) -> str:
    tls = "STARTTLS required" if server.starttls else "plain text"
    return f"SMTP fake on {server.host}:{server.port} ({tls})\nusername={server.username} password={server.password}"


if __name__ == "__main__":
    serve_by_hand("Local SMTP submission fake", lambda port: SmtpServer(port=port), _banner)
