"""One SMTP mail transaction for one recipient that says whether a lost connection may have delivered it.

``smtplib.SMTP.sendmail`` raises the same ``SMTPServerDisconnected`` whether the connection broke at ``MAIL``,
at ``RCPT``, while the message was being written, or once all of it was written and the server's reply was awaited.
Only the last leaves the outcome in doubt: a server takes a message when it reads the line ``.`` that ends it, so
until that line was handed to the connection it cannot have taken it, and afterwards it may have, with its reply
lost. :func:`transact` runs the transaction with ``smtplib``'s own commands and raises :class:`ReplyLost` for that
last case only; every other failure is raised as ``sendmail`` raises it. :class:`Link` is a publish's connection,
opened again after one was lost, so a dropped connection costs one recipient's attempt, not the rest of the batch.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress

#: How many times one publish opens a new connection after one was lost: a flaky link goes on, a dead server is
#: not hammered (the rest wait for the next run).
RECONNECTS = 3


class ReplyLost(Exception):
    """The whole message was written to the server, then the connection broke (or timed out) before its reply:
    the server may have taken it. Not an ``OSError``, so a caller's handling of a lost connection never takes it
    for one that delivered nothing."""


def transact(smtp: smtplib.SMTP, sender: str, address: str, raw: bytes, mail_options: Sequence[str]) -> None:
    """Send ``raw`` from ``sender`` to ``address`` over ``smtp`` (``MAIL``, ``RCPT``, ``DATA``).

    Raises ReplyLost when the connection is lost once the message was written (see the module docstring).
    Raises, as ``sendmail`` does: SMTPSenderRefused, SMTPRecipientsRefused or SMTPDataError when the server refuses
    a step (the transaction reset, or the connection closed after a 421), SMTPServerDisconnected (an OSError) when
    the connection is lost before the message was written whole: the server cannot have it.
    """
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender, list(mail_options))
    if code != 250:
        _abandon(smtp, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    code, reply = smtp.rcpt(address)
    if code not in (250, 251):
        _abandon(smtp, code)
        raise smtplib.SMTPRecipientsRefused({address: (code, reply)})
    code, reply = smtp.docmd("data")
    if code != 354:
        _abandon(smtp, code)
        raise smtplib.SMTPDataError(code, reply)
    smtp.send(_data(raw))
    try:
        code, reply = smtp.getreply()
    except smtplib.SMTPServerDisconnected as exc:
        raise ReplyLost(str(exc)) from exc
    if code != 250:
        _abandon(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


def _data(raw: bytes) -> bytes:
    """``raw`` as ``DATA`` sends it: a line starting with a dot with one more (RFC 5321 section 4.5.2), ended by a line
    with a dot alone; the bytes ``smtplib``'s ``data`` sends. Its dots doubled with ``bytes.replace`` rather than its
    ``(?m)^\\.`` substitution (the same: a line starts the message or follows a line feed): a newsletter's 20 KB take
    the expression ~0.1 ms, an eighth of what a recipient costs this process, and the replace a fifth of that."""
    body = raw.replace(b"\n.", b"\n..")
    if body.startswith(b"."):
        body = b"." + body
    return body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n"


def _abandon(smtp: smtplib.SMTP, code: int) -> None:
    """After a refused step, as ``sendmail`` does: close on 421 (the server is closing), else reset the
    transaction, a connection lost meanwhile left for the next command to find."""
    if code == 421:
        smtp.close()
        return
    with suppress(smtplib.SMTPServerDisconnected):
        smtp.rset()


class Link:
    """The SMTP connection of one publish: opened by ``connect`` when first needed, and again after one was lost
    (up to :data:`RECONNECTS` times); every one opened is quit when ``stack`` closes."""

    def __init__(self, stack: ExitStack, connect: Callable[[], smtplib.SMTP]) -> None:
        self._stack = stack
        self._connect = connect
        self._smtp: smtplib.SMTP | None = None
        self._lost = 0

    def smtp(self) -> smtplib.SMTP:
        """The open connection, opened now if there is none; raises as ``connect`` does."""
        if self._smtp is None:
            self._smtp = self._stack.enter_context(self._connect())
        return self._smtp

    def lost(self) -> bool:
        """Forget the connection that was lost; whether this publish may open another."""
        self._smtp = None
        self._lost += 1
        return self._lost <= RECONNECTS
