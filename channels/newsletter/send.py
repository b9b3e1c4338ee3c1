"""The newsletter's sending: over SMTP to every consenting subscriber, chunk by chunk, each delivery claimed
before it is sent and recorded after; or, without credentials, the list-level copy to the outbox. Staff mail and
notices go through the same SMTP login."""

from __future__ import annotations

import functools
import re
import smtplib
import ssl
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from email.message import EmailMessage
from email.utils import formataddr
from typing import Literal

from pydantic import SecretStr

from carecast.plugin import ChannelLedger as Ledger
from carecast.plugin import (
    CredentialError,
    DeliveryOutcome,
    Draft,
    PublishContext,
    PublishError,
    Receipt,
    now_utc,
    resolve,
)
from carecast.plugin.audience import (
    RecipientLinks,
    Subscriber,
    addressed,
    batched,
    list_scope,
)
from carecast_channels.newsletter.config import SmtpCredentials
from carecast_channels.newsletter.message import NewsletterMessages, PreparedMessage
from carecast_channels.newsletter.smtp_transaction import Link, ReplyLost, transact

#: The token of the list-level copy the outbox keeps; per-recipient tokens come with SMTP delivery.
LIST_TOKEN = "list"
#: Unsubscribe tokens a fan-out issues per ledger transaction, ahead of the sends, whatever its delivery chunk.
TOKEN_BLOCK = 500
#: Subscribers (and their deliveries) read from the ledger at a time: a long list never sits in memory.
SUBSCRIBER_PAGE = 1000
#: What SMTP reply codes mean (RFC 5321 4.2.3, RFC 4954), in words that name no one.
SMTP_REPLIES = {
    421: "service not available, closing the connection",
    450: "mailbox unavailable, try again later",
    451: "local error, try again later",
    452: "insufficient storage",
    454: "temporary authentication failure",
    530: "authentication required",
    535: "authentication failed",
    550: "mailbox unavailable",
    551: "user not local",
    552: "storage allocation exceeded",
    553: "mailbox name not allowed",
    554: "transaction failed",
    555: "parameters not recognized",
}
_ENHANCED_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\b")


class NewsletterSending(NewsletterMessages):
    """How a newsletter reaches its subscribers and the practice's staff."""

    def sender(self) -> str | None:
        """The SMTP server and the login messages are submitted with."""
        credentials = self.config.credentials
        return None if credentials is None else f"{credentials.server} {credentials.username}"

    def send_staff_mail(self, message: EmailMessage) -> str | None:
        """Send a message to the practice's staff (the weekly report) from this newsletter's sender over its SMTP
        server; None without credentials. Raises PublishError when the server cannot be reached or refuses it."""
        credentials = self.config.credentials
        if credentials is None:
            return None
        del message["From"]
        message["From"] = formataddr((self.config.from_name, str(self.config.from_address)))
        with self._connect(credentials, resolve(credentials.password)) as smtp:
            try:
                smtp.send_message(message)
            except (smtplib.SMTPException, OSError) as exc:
                why = f"the SMTP server {credentials.server} did not take the report: {exc}"
                raise PublishError(self.instance, why, transient=True) from exc
        return f"smtp {credentials.server}"

    def verify(self) -> str:
        """Connect, secure the connection and log in to the SMTP server, then quit without sending.

        Raises CredentialError when the password or the unsubscribe secret is not set or the server refuses the
        login; PublishError when the server cannot be reached or refuses TLS.
        """
        credentials = self.config.credentials
        if credentials is None:
            return super().verify()
        password, _ = self._secrets()
        with self._connect(credentials, password):
            pass
        return f"SMTP {credentials.server} ({credentials.security}): logged in as {credentials.username}, nothing sent"

    def send_notice(self, email: EmailMessage) -> str | None:
        """Mail staff a notice through this newsletter's SMTP login, from its ``from_address``; None without
        credentials.

        Raises CredentialError when the password is not set; PublishError when the server cannot be reached or
        refuses the login or the message.
        """
        credentials = self.config.credentials
        if credentials is None:
            return None
        password = resolve(credentials.password)
        del email["From"]
        email["From"] = str(self.config.from_address)
        with self._connect(credentials, password) as smtp:
            try:
                smtp.send_message(email)
            except smtplib.SMTPException as exc:
                raise PublishError(
                    self.instance, f"the SMTP server {credentials.server} refused: {exc}", transient=True
                ) from exc
        return f"emailed to {email['To']} through {credentials.server}"

    def _to_outbox(self, draft: Draft, context: PublishContext) -> Receipt:
        """The list-level copy of ``draft`` as one ``.eml`` in the outbox, exactly as it would go on the wire."""
        prepared = self.prepare_message(draft, len(LIST_TOKEN))
        raw, _ = prepared.for_recipient(self.config.list_name, self.config.from_address, LIST_TOKEN)
        path = context.outbox.write(self.instance, context.key, ".eml", raw)
        return context.outbox.receipt(path)

    def _secrets(self) -> tuple[SecretStr, SecretStr]:
        """The SMTP password and the unsubscribe secret; raises CredentialError naming the one that is not set."""
        assert self.config.credentials is not None and self.config.unsubscribe_secret is not None  # the config says
        return resolve(self.config.credentials.password), resolve(self.config.unsubscribe_secret)

    def _by_smtp(self, draft: Draft, context: PublishContext, credentials: SmtpCredentials) -> Receipt:
        password, _ = self._secrets()  # the unsubscribe secret only reads links sent before tokens were opaque
        ledger, publication = context.ledger, context.publication_id
        retry_reasons: list[str] = []
        # Encoded once, for the length of the tokens the ledger issues (all alike; cached should one differ).
        prepared = functools.cache(lambda token_length: self.prepare_message(draft, token_length))
        personal = RecipientLinks.of(self.settings, ledger, self.name)  # links.email_per_recipient
        outcomes: list[DeliveryOutcome] = []  # of the chunk in hand, not recorded yet
        claimed: list[str] = []
        with ExitStack() as stack:
            link = Link(stack, lambda: self._connect(credentials, password))
            # Skipped: counted at the end.
            pending = _pending(ledger, self._recipients(context), publication, Counter())
            try:
                for chunk, tokens in self._with_tokens(ledger, pending, context.delivery_chunk):
                    if context.stopping.is_set():
                        break
                    # Opened for the first chunk only: a resumed batch with nobody left opens no connection.
                    link.smtp()
                    # The chunk is claimed before any of it is sent (recipients another worker or an earlier attempt
                    # has are left out), in the transaction recording the chunk before: one commit per chunk, and a
                    # process killed at any line leaves only the chunk in hand claimed.
                    claimed = ledger.claim_deliveries(
                        publication, [subscriber.address for subscriber in chunk], finished=outcomes
                    )
                    outcomes = []
                    if personal is not None:
                        personal.expect(claimed)
                    message = functools.partial(_message, prepared, tokens, personal)
                    if not self._send_chunk(context, link, chunk, set(claimed), message, outcomes, retry_reasons):
                        break
            finally:
                # The loop's end, a stop, a refusal or a lost ledger: the chunk in hand is recorded all the same.
                ledger.finish_deliveries(publication, outcomes, claimed)
        # A stop is said once the chunk in hand is recorded, so that what went out is counted whole.
        context.stop_if_asked(self.instance)
        skipped: Counter[str] = Counter()  # who is left and who is skipped, as the ledger now stands
        left = sum(1 for _ in _pending(ledger, self._recipients(context), publication, skipped))
        summary = f"smtp {credentials.server}: {_summary(ledger.delivery_state_counts(publication), skipped)}"
        if left:
            reason = retry_reasons[0] if retry_reasons else "not sent yet"
            raise PublishError(self.instance, f"{summary}; {left} left for the next run ({reason})", transient=True)
        return Receipt(location=summary, sent_at=now_utc())

    def _send_chunk(
        self,
        context: PublishContext,
        link: Link,
        chunk: list[Subscriber],
        mine: set[str],
        message: Callable[[Subscriber], tuple[bytes, str]],
        outcomes: list[DeliveryOutcome],
        retry: list[str],
    ) -> bool:
        """Send to the recipients of ``chunk`` claimed now (``mine``), in order, each outcome appended to
        ``outcomes``; return whether the batch may go on (False: a stop was asked, the server is closing, or no
        connection is left). Raises as :meth:`_send_one` does."""
        for subscriber in chunk:
            if subscriber.address not in mine:
                continue
            if context.stopping.is_set():
                return False
            raw = message(subscriber)
            context.pace()
            after = self._send_one(link.smtp(), raw, subscriber.address, context.ledger, outcomes, retry)
            if not (after == "go on" or (after == "reconnect" and link.lost())):
                return False
        return True

    def list_scope(self) -> str:
        """What an unsubscribe from this list suppresses (:func:`carecast.recipients.list_scope`)."""
        return list_scope(self.name, self.instance, self.config.audience)

    def _recipients(self, context: PublishContext) -> Iterator[Subscriber]:
        """Everyone this list addresses (:func:`carecast.recipients.addressed`), read afresh."""
        return addressed(self, context)

    def _with_tokens(
        self, ledger: Ledger, pending: Iterable[Subscriber], chunk_size: int
    ) -> Iterator[tuple[list[Subscriber], dict[str, str]]]:
        """``pending`` in chunks of ``chunk_size``, each with its recipients' unsubscribe tokens.

        Tokens are issued (committed) before any of their recipients is sent to, so every link sent works, and for
        about :data:`TOKEN_BLOCK` recipients at once, in one transaction whatever the chunk: one issued for a
        recipient another worker sends to, or nobody does, is never used and names nobody.
        """
        list_id = self.list_id()
        for block in batched(batched(pending, chunk_size), max(1, TOKEN_BLOCK // chunk_size)):
            addresses = [subscriber.address for chunk in block for subscriber in chunk]
            tokens = ledger.issue_unsubscribe_tokens(self.list_scope(), list_id, addresses)
            for chunk in block:
                yield chunk, tokens

    def _send_one(
        self,
        smtp: smtplib.SMTP,
        message: tuple[bytes, str],
        address: str,
        ledger: Ledger,
        outcomes: list[DeliveryOutcome],
        retry: list[str],
    ) -> Literal["go on", "stop", "reconnect"]:
        """Send one claimed message (its bytes and Message-ID) and append how it went to ``outcomes``; return
        whether the batch goes on over this connection, stops (a 421: the server is closing), or goes on over a new
        one (this one was lost). A reason to try this recipient again later is appended to ``retry``; a bounce
        suppresses the address; a connection lost once the message was written leaves the recipient ``unknown``
        (:mod:`carecast_channels.newsletter.smtp_transaction`), one lost before is retried by the next run. Raises
        PublishError (not transient) when the server refuses our sender for good: every message would fail alike (the
        outcome is appended first).
        """
        raw, message_id = message
        try:
            sender = self.config.from_address
            transact(smtp, sender, address, raw, _mail_options(smtp, sender, address))
        except ReplyLost as exc:
            # The server read the whole message, then its reply was lost: it may have it, and SMTP keeps no list
            # to ask. Never sent again on its own; staff check with the recipient and settle it.
            lost = f"the connection to the SMTP server was lost after the message was sent ({exc})"
            outcomes.append(DeliveryOutcome(address, "unknown", error=f"{lost}; it may have arrived"))
            return "reconnect"
        except smtplib.SMTPRecipientsRefused as exc:
            [(code, reply)] = exc.recipients.values()
            why = _reply(code, reply)
            if code >= 500:
                ledger.suppress(self.name, address, "bounced", f"SMTP {why}")
                outcomes.append(DeliveryOutcome(address, "failed", error=f"bounced: {why}"))
            else:
                outcomes.append(DeliveryOutcome(address, "failed", error=why, transient=True))
                retry.append(why)
            return "stop" if code == 421 else "go on"  # 421: the server is closing the connection
        except smtplib.SMTPResponseException as exc:
            why = _reply(exc.smtp_code, exc.smtp_error)
            transient = exc.smtp_code < 500
            outcomes.append(DeliveryOutcome(address, "failed", error=why, transient=transient))
            if isinstance(exc, smtplib.SMTPSenderRefused) and not transient:
                raise PublishError(
                    self.instance, f"the SMTP server refused the sender: {why}", transient=False
                ) from exc
            if transient:
                retry.append(why)
            return "stop" if exc.smtp_code == 421 else "go on"  # 421: the server is closing the connection
        except smtplib.SMTPNotSupportedError as exc:
            outcomes.append(DeliveryOutcome(address, "failed", error=f"the server cannot take this message: {exc}"))
            return "go on"
        except OSError as exc:
            # Lost before the message was written whole (at MAIL, RCPT, or mid-data): the server cannot have it.
            lost = f"the connection to the SMTP server was lost before the message was sent ({type(exc).__name__})"
            outcomes.append(DeliveryOutcome(address, "failed", error=lost, transient=True))
            retry.append(lost)
            return "reconnect"
        outcomes.append(DeliveryOutcome(address, "sent", provider_id=message_id))
        return "go on"

    def _connect(self, credentials: SmtpCredentials, password: SecretStr) -> smtplib.SMTP:
        """An SMTP connection, secured as configured and logged in; use it as a context manager (it quits).

        Raises PublishError: transient when the server cannot be reached or answers 4xx; permanent when TLS fails
        (an untrusted certificate, no STARTTLS). Raises CredentialError when the login is refused (retried once the
        staff fix it).
        """
        host, port = credentials.host, credentials.effective_port
        # Built only when used: loading the system's certificates takes 0.02 s, a tenth of a small publish's own work.
        tls = None
        if credentials.security != "none":
            tls = ssl.create_default_context(
                cafile=None if credentials.ca_file is None else self.settings.path(credentials.ca_file)
            )
        where = f"SMTP server {credentials.server}"
        try:
            if credentials.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=credentials.timeout, context=tls)
            else:
                smtp = smtplib.SMTP(host, port, timeout=credentials.timeout)
            try:
                smtp.ehlo()
                if credentials.security == "starttls":
                    smtp.starttls(context=tls)
                    smtp.ehlo()
                smtp.login(credentials.username, password.get_secret_value())
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPAuthenticationError as exc:
            # A wrong or revoked password (535) is mended by a person, then the publication is retried.
            why = _reply(exc.smtp_code, exc.smtp_error)
            raise CredentialError(
                f"channels.{self.instance}.credentials",
                f"the {where} refused the login of {credentials.username!r} ({why}): fix the username or password, "
                "and the next run sends it",
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise PublishError(self.instance, f"the {where} does not support {exc}", transient=False) from exc
        except smtplib.SMTPResponseException as exc:
            why = _reply(exc.smtp_code, exc.smtp_error)
            raise PublishError(self.instance, f"the {where} answered {why}", transient=exc.smtp_code < 500) from exc
        except ssl.SSLError as exc:  # certificate not trusted, or not TLS at all: a configuration to fix
            raise PublishError(self.instance, f"TLS with the {where} failed: {exc.reason}", transient=False) from exc
        except OSError as exc:  # refused, unreachable, timed out, disconnected
            raise PublishError(self.instance, f"cannot reach the {where}: {exc}", transient=True) from exc
        return smtp


def _message(
    prepared: Callable[[int], PreparedMessage],
    tokens: dict[str, str],
    personal: RecipientLinks | None,
    subscriber: Subscriber,
) -> tuple[bytes, str]:
    """``subscriber``'s copy (its bytes and Message-ID): the prepared message with their token, and their own link
    codes when the practice counts clicks per recipient. Raises LedgerError when those codes cannot be made."""
    token = tokens[subscriber.address]
    raw, message_id = prepared(len(token)).for_recipient(subscriber.name, subscriber.address, token)
    if personal is not None:
        raw = personal.apply(raw, subscriber.address)
    return raw, message_id


def _mail_options(smtp: smtplib.SMTP, sender: str, address: str) -> tuple[str, ...]:
    """What ``MAIL FROM`` needs when the sender's or the recipient's address is internationalized (RFC 6531), as
    ``smtplib``'s ``send_message`` asks. Raises smtplib.SMTPNotSupportedError when the server cannot take it."""
    if (sender + address).isascii():
        return ()
    if not smtp.has_extn("smtputf8"):
        raise smtplib.SMTPNotSupportedError("an internationalized address needs SMTPUTF8, which the server lacks")
    return ("SMTPUTF8", "BODY=8BITMIME")


def _pending(
    ledger: Ledger, audience: Iterable[Subscriber], publication: int, skipped: Counter[str]
) -> Iterator[Subscriber]:
    """Who of a publication's ``audience`` (:meth:`NewsletterChannel._recipients`, streamed) is still to be sent to,
    read a page of subscribers (and their deliveries) at a time, so memory stays flat however long the list; who is
    skipped is counted in ``skipped`` by reason."""
    for page in batched(audience, SUBSCRIBER_PAGE):
        deliveries = ledger.deliveries(publication, [subscriber.address for subscriber in page])
        for subscriber in page:
            record = deliveries.get(subscriber.address)
            # Settled (sent, failed for good) or in another attempt's hands: never touched again.
            if record is not None and not (
                record.state == "deferred" or (record.state == "failed" and record.transient)
            ):
                continue
            if (reason := subscriber.exclusion_reason) is None:
                yield subscriber
            else:
                skipped[reason] += 1


def _summary(counts: Counter[tuple[str, bool]], skipped: Counter[str]) -> str:
    """E.g. ``7 sent, 1 not delivered, 3 skipped (1 no consent on file, 2 status is unsubscribed)``."""
    sent = counts[("sent", False)] + counts[("sent", True)]
    lost = counts[("failed", False)]
    parts = [f"{sent} sent"] + ([f"{lost} not delivered"] if lost else [])
    reasons = ", ".join(f"{count} {why}" for why, count in sorted(skipped.items()))
    parts.append(f"{skipped.total()} skipped" + (f" ({reasons})" if reasons else ""))
    return ", ".join(parts)


def _reply(code: int, reply: bytes | str) -> str:
    """An SMTP reply for the ledger, errors and logs: its code, its enhanced status code (RFC 3463) if it has one,
    and fixed words for the code, e.g. ``550 5.1.1 mailbox unavailable``.

    Never the server's own text: it often echoes the address it is about ("<ann@example.com>: User unknown").
    """
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    enhanced = _ENHANCED_STATUS.match(text.strip())
    words = SMTP_REPLIES.get(code) or ("refused" if code >= 500 else "try again later")
    return " ".join([str(code), *([enhanced.group()] if enhanced else []), words])
