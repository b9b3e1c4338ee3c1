"""The SMS channel: one short text per item to every subscriber who consented, sent through Twilio.

``compose`` renders ``templates/sms/text.txt.j2`` ("Oakview PT: <summary> <link> Reply STOP to opt out"): the
sender prefix and the opt-out footer are always there and count toward the segments (RULES.md "SMS compliance");
``enforce`` refuses any text without them, a template's or one edited at approval alike.
Typographic quotes, dashes and the ellipsis become their GSM-7 look-alikes, since one of them alone makes the text
UCS-2 and halves what a segment holds; emoji are dropped (``emoji: drop``, the default), or kept only when the text
fits with them (``emoji: keep``); accents outside GSM-7 lose their accent when that makes the text fit whole. A
summary still too long is cut in its middle to fit ``max_segments``: its opening and its last sentence (the call to
action) stay, and so do the sender prefix, the link and the opt-out footer. A text with a link, the story one tap
away, is cut to the fewest segments that hold the summary's first sentence whole (each segment is billed). Items
that mention a patient are refused even with an authorization: no PHI in any SMS.

The recipients are the ledger's SMS subscribers (``sync_audience`` loads ``audience/sms.csv`` into it each run;
the ledger also holds every opt-out, so it is the truth of who may be texted), or with ``audience:`` the people of
that audience (and ``segment``) of the practice's config (:mod:`carecast.recipients`), a STOP to any of the
practice's numbers still in force. Subscribers without consent or no longer subscribed are skipped and counted
with their reason.

With Twilio ``credentials`` configured, ``publish`` POSTs one message per recipient to the Messages API
(form-encoded, HTTP Basic auth with the Account SID and the Auth Token). Each recipient's delivery is claimed in
the ledger before the request and recorded after, so a batch cut short resumes with only the recipients not yet
sent. With ``concurrency: N`` (at most 8) N texts are in flight at once over one connection pool: claimed together
before any goes, paced by the sender's ``rate`` as they start, and recorded as they end; a stop lets them finish.
A recipient outside their quiet-hours window (:mod:`carecast.compliance`) is recorded ``deferred`` until it opens
and the publish ends with a transient error, so the next run texts them then; one whose area code spans zones whose
windows never meet is skipped until their ``timezone`` is known. Twilio's answers:

- 21610 (the recipient replied STOP to Twilio) suppresses the number as ``opted_out``; 21211 and 21614 (not a valid
  mobile number) as ``invalid``; 30007 (carrier filtered) fails the delivery for good, so the same text is never
  resent. These concern one recipient: the batch goes on.
- 429, 5xx, and a connection that could not be made are retried with backoff, honouring ``Retry-After``, within
  ``retry_budget`` seconds per publish; then the rest is left for the next run (transient, with ``retry_after``).
- An answer lost once the request was sent (a read timeout, the connection dropped) may follow an accepted text,
  and Twilio has no idempotency key: the batch goes on and the publication ends transient; the next run first asks
  Twilio's message list about that recipient (and about one whose run died with its text in flight) and texts them
  only if Twilio has no such text (:mod:`carecast_channels.sms.lookup`). Never texted twice, never left out.
- A 401 (20003) is the credentials: the publish stops, retried once the staff fix them. Anything else (a sender
  Twilio refuses) would fail for every recipient: the publish stops with a permanent error, the recipient in hand
  left retryable.

Delivery reports arrive later through Twilio's status callback (``status_callback``):
:meth:`SmsChannel.apply_status_callback` checks their signature and records ``delivered`` or ``failed``.

Without credentials ``publish`` writes to the outbox the ``Messages.json`` request of each recipient, and lists
the others with the reason they are skipped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, Self

import requests

from carecast.plugin import (
    ContentItem,
    CredentialError,
    DeliveryOutcome,
    Draft,
    MeasureError,
    PublishContext,
    PublishError,
    Receipt,
    RenderError,
    Route,
    now_utc,
    resolve,
)
from carecast.plugin.audience import (
    InFlight,
    Subscriber,
    addressed,
    batched,
    e164,
    recipient_zones,
)
from carecast.plugin.text import LANGUAGES as WORD_LANGUAGES
from carecast.plugin.text import (
    drop_emoji,
    flatten,
    sms_measure,
    to_gsm,
    transliterate_to_gsm,
    without_repeats,
    words,
)
from carecast_channels.sms.compose import cut
from carecast_channels.sms.config import API_VERSION, DEFAULT_OPT_OUT, SmsConfig, TwilioCredentials
from carecast_channels.sms.endpoints import TwilioEndpoints
from carecast_channels.sms.lookup import finder, in_doubt, settle
from carecast_channels.sms.twilio import (
    Sent,
    TwilioSender,
    json_body,
    twilio_error,
    twilio_signature,
)

log = logging.getLogger(__name__)

#: What other modules and tests import from here, wherever in the package it lives.
__all__ = ["SmsChannel", "SmsConfig", "TwilioCredentials", "TwilioEndpoints", "twilio_signature"]

#: Seconds between two recordings of a chunk's outcomes: well within twilio.CALLBACK_WAIT.
RECORD_EVERY = 1.0


class SmsChannel(TwilioSender):
    """Marketing texts: one item a text, to every subscriber with consent on file."""

    name = "sms"
    Config = SmsConfig
    utm_source = "sms"
    utm_medium = "sms"
    limits: ClassVar[dict[str, int]] = {"max_segments": 3}
    #: Texts are for recognition (observances, staff, milestones), never blog posts, whatever source they come from.
    kinds: ClassVar[frozenset[str] | None] = frozenset({"observance", "recognition"})
    #: A long-code sender sends one message a second (Twilio queues the rest); held across workers when deployed.
    rate: ClassVar[tuple[int, float] | None] = (1, 1.0)

    config: SmsConfig

    def admit(self, item: ContentItem) -> None:
        """Refuse any item that mentions a patient, authorized or not.

        Raises RenderError: RULES.md "Healthcare" allows no PHI in an SMS at all.
        """
        super().admit(item)
        if item.mentions_patient:
            raise RenderError(
                self.instance, "mentions a patient: no PHI in any SMS, even with an authorization", [item.id]
            )

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Render one item as a text within ``max_segments``, shortening its summary when needed.

        Raises RenderError when ``items`` is not exactly one item, or when not even a word of the summary fits beside
        the prefix, link and footer (``enforce`` then checks the prefix and the footer).
        """
        if len(items) != 1:
            raise RenderError(self.instance, f"a text is for exactly one item, not {len(items)}", [i.id for i in items])
        item = items[0]
        link = self.link(item)
        limit = self.limit("max_segments") or self.limits["max_segments"]
        summary = flatten(item.summary_text or item.title)
        _, summary = without_repeats("", summary, item.url)  # the link goes once, where the template puts it

        opt_out = self.opt_out_text(item.language)

        def text(body: str) -> str:
            return to_gsm(self.template("text.txt.j2", item=item, body=body, link=link, opt_out=opt_out))

        def fits(body: str) -> bool:
            return sms_measure(text(body)).segments <= limit

        # The first wording that fits whole wins; one emoji or accent alone makes a text UCS-2 and halves what a
        # segment holds, so without them (GSM-7) a text that did not fit often does.
        wordings = [summary] if self.config.emoji == "keep" else []
        wordings += [drop_emoji(summary), transliterate_to_gsm(drop_emoji(summary))]
        body = next((wording for wording in wordings if fits(wording)), None)
        if body is None:
            try:
                body = cut(wordings[-1], text, limit, fewest=bool(link))
            except MeasureError as exc:
                raise RenderError(self.instance, f"does not fit in {limit} segments: {exc}", [item.id]) from exc
        return Draft(channel=self.instance, item_ids=(item.id,), parts=(text(body),))

    def opt_out_text(self, language: str | None) -> str:
        """The footer of a text in ``language``: the configured one, or, when the practice kept the default, its
        translation (a Spanish post ends "Responda STOP para darse de baja")."""
        if self.config.opt_out_text != DEFAULT_OPT_OUT:
            return self.config.opt_out_text
        return words(language or self.practice.language)["sms_opt_out"]

    def enforce(self, draft: Draft) -> Draft:
        """Check a text as rendered or as edited at approval: one message, in GSM-7 look-alikes where they exist,
        starting with the sender prefix and keeping the opt-out footer (TCPA), within the segment limit.

        Raises RenderError naming what is missing or over the limit.
        """
        draft = replace(draft, parts=tuple(to_gsm(part) for part in draft.parts))
        if len(draft.parts) != 1:
            raise RenderError(self.instance, f"a text is one message, not {len(draft.parts)} parts", draft.item_ids)
        prefix, footer = to_gsm(f"{self.practice.short_name}:"), to_gsm(self.config.opt_out_text)
        footers = {footer, *(to_gsm(self.opt_out_text(language)) for language in WORD_LANGUAGES)}
        if not draft.text.startswith(prefix) or not any(wording in draft.text for wording in footers):
            raise RenderError(self.instance, f"a text must start with {prefix!r} and keep {footer!r}", draft.item_ids)
        return super().enforce(draft)

    # -- publishing --------------------------------------------------------------------------------------------

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Text ``draft`` to every subscriber who may receive it through Twilio, or without credentials write the
        requests to the outbox.

        Raises CredentialError, as it is, when the Auth Token cannot be read (nothing was sent). Raises
        PublishError: transient when recipients are left for a later run (outside their window, Twilio throttled or
        unreachable beyond the retry budget, or its answer lost), with ``retry_after`` when known; permanent when
        nothing can go out (Twilio refusing the account or the sender, nobody reachable) or the outbox refuses the
        file.
        """
        # Streamed a page (or an audience file's row) at a time: memory stays flat however long the list.
        recipients = addressed(self, context)
        if self.config.credentials is None:
            return self._to_outbox(draft, context, list(recipients))
        return self._by_twilio(draft, context, recipients, self.config.credentials)

    def sender(self) -> str | None:
        """The Twilio account and the number (or Messaging Service) texts come from."""
        credentials = self.config.credentials
        if credentials is None:
            return None
        return f"{credentials.account_sid} {self.config.from_number or self.config.messaging_service_sid}"

    def verify(self) -> str:
        """Fetch the Twilio account (``GET /2010-04-01/Accounts/{sid}.json``): proves the credentials, sends nothing.

        Raises CredentialError when the Auth Token is unset or Twilio refuses it; PublishError when Twilio cannot be
        reached or the account is not active.
        """
        credentials = self.config.credentials
        if credentials is None:
            return super().verify()
        with self._session(credentials, resolve(credentials.auth_token)) as session:
            try:
                response = session.get(credentials.url(".json"), timeout=self.config.timeout)
            except requests.RequestException as exc:
                raise PublishError(
                    self.instance, f"Twilio cannot be reached ({type(exc).__name__})", transient=True
                ) from exc
        if response.status_code in (401, 403):
            raise CredentialError(
                credentials.auth_token.where, f"Twilio refused it with account {credentials.account_sid}"
            )
        account = json_body(response)
        if response.status_code == 429 or response.status_code >= 500:
            raise PublishError(self.instance, twilio_error(response, account), transient=True)
        if response.status_code != 200 or account.get("status") != "active":
            why = twilio_error(response, account) if response.status_code != 200 else f"is {account.get('status')}"
            raise PublishError(self.instance, f"Twilio account {credentials.account_sid}: {why}", transient=False)
        return f"Twilio account {credentials.account_sid} ({account.get('friendly_name')}) is active; nothing sent"

    @classmethod
    def routes(cls, channels: Sequence[Self]) -> Sequence[Route]:
        """``POST /twilio/status`` (delivery reports) and ``POST /twilio/inbound`` (STOP, START, HELP) for the
        channels with credentials (see :class:`TwilioEndpoints`); none without.

        Raises CredentialError when an Auth Token cannot be read.
        """
        signed = [channel for channel in channels if channel.config.credentials is not None]
        return TwilioEndpoints(signed).routes() if signed else ()

    def _to_outbox(self, draft: Draft, context: PublishContext, subscribers: Sequence[Subscriber]) -> Receipt:
        payload: dict[str, Any] = {
            "endpoint": f"POST /{API_VERSION}/Accounts/{{AccountSid}}/Messages.json",
            "account": self.config.account,
            "requests": [self.form(s.address, draft.text) for s in subscribers if s.can_receive],
            "skipped": [{"to": s.address, "reason": s.exclusion_reason} for s in subscribers if not s.can_receive],
        }
        if self.config.audience is not None:
            payload["audience"] = self.config.audience
            payload["segment"] = self.config.segment
        path = context.outbox.write_json(self.instance, context.key, payload)
        return context.outbox.receipt(path)

    def _by_twilio(
        self, draft: Draft, context: PublishContext, subscribers: Iterable[Subscriber], credentials: TwilioCredentials
    ) -> Receipt:
        token = resolve(credentials.auth_token)
        ledger, publication = context.ledger, context.publication_id
        skipped: Counter[str] = Counter()
        waits: list[datetime] = []
        deadline = time.monotonic() + self.config.retry_budget
        concurrency = self.config.concurrency
        outcomes: list[DeliveryOutcome] = []  # of the chunk in hand, not recorded yet
        claimed: list[str] = []
        recorded: set[str] = set()
        with self._session(credentials, token, concurrency) as session, InFlight[Sent](concurrency) as sends:
            # Texts in doubt (a lost answer, a run that died) are looked up at Twilio before anyone is texted.
            sender = self.config.from_number
            url = credentials.url("/Messages.json")
            find = finder(session, url, draft.text, sender, self.config.timeout, self.lookup_skew)
            doubtful = settle(ledger, publication, find)
            reachable = (pair for pair in self._reachable(subscribers, context.now, skipped) if pair[0] not in doubtful)
            # Claimed together: at least as many as may be in flight at once.
            chunks = batched(reachable, max(context.delivery_chunk, concurrency))
            try:
                for chunk in chunks:
                    if context.stopping.is_set():
                        break
                    openings = dict(chunk)
                    # The chunk is claimed before any of it is sent, in the transaction recording the chunk before;
                    # its outcomes are recorded at least every RECORD_EVERY seconds too: Twilio's status callbacks
                    # wait (CALLBACK_WAIT) for their message's record.
                    claimed = ledger.claim_deliveries(publication, list(openings), finished=outcomes)
                    outcomes, recorded = [], set()
                    last_record = time.monotonic()
                    for address in claimed:
                        if context.stopping.is_set():
                            break
                        if openings[address] > context.now:
                            outcomes.append(DeliveryOutcome(address, "deferred", not_before=openings[address]))
                            waits.append(openings[address])
                            continue
                        _collect(sends.room(), outcomes)  # a send that stops the publish: nothing more starts
                        context.pace()  # in this thread: the sends in flight share the sender's rate
                        text = partial(self._text, session, credentials, ledger, draft, address, deadline)
                        _collect(sends.start(text), outcomes)
                        if time.monotonic() - last_record >= RECORD_EVERY and outcomes:
                            ledger.finish_deliveries(publication, outcomes)
                            recorded.update(outcome.address for outcome in outcomes)
                            outcomes, last_record = [], time.monotonic()
                    _collect(sends.finish(), outcomes)
            finally:
                # A stop, a refusal or a crash of this thread: the sends in flight end and are recorded all the same.
                try:
                    _collect(sends.finish(), outcomes)
                finally:
                    ledger.finish_deliveries(publication, outcomes, [a for a in claimed if a not in recorded])
        # A stop is said once the texts in hand are recorded, so that what went out is counted whole.
        context.stop_if_asked(self.instance)
        doubtful |= {address for address, record in ledger.deliveries(publication).items() if in_doubt(record)}
        if doubtful:
            reason = f"Twilio's answer to {len(doubtful)} text(s) was lost; they are looked up at Twilio next run"
            raise PublishError(self.instance, reason, transient=True)
        return self._receipt(credentials, context, skipped, waits)

    def _reachable(
        self, subscribers: Iterable[Subscriber], now: datetime, skipped: Counter[str]
    ) -> Iterator[tuple[str, datetime]]:
        """Each subscriber who may be texted, with when their quiet hours open (``now`` or later); the others are
        counted in ``skipped`` by reason."""
        for subscriber in subscribers:
            address = subscriber.address
            reason = subscriber.exclusion_reason or _invalid(address)
            if reason is not None:
                skipped[reason] += 1
                continue
            zones = recipient_zones(address, subscriber.timezone, self.practice)
            opening = self.config.quiet_hours.opening(address, zones, now)
            if opening is None:
                skipped["quiet hours never open in every zone of the area code; set their timezone"] += 1
                continue
            yield address, opening

    def _receipt(
        self, credentials: TwilioCredentials, context: PublishContext, skipped: Counter[str], waits: list[datetime]
    ) -> Receipt:
        """The publication's outcome over every attempt so far.

        Raises PublishError: transient while recipients wait for their window, permanent when nobody was texted.
        """
        # Accepted by Twilio is texted, whatever its status callbacks (arriving meanwhile) say about delivery.
        sent, failed = context.ledger.delivery_tally(context.publication_id)
        notes = [f"{count} skipped: {reason}" for reason, count in sorted(skipped.items())]
        notes += [f"{count} failed: {error}" for error, count in sorted(failed.items())]
        summary = "; ".join([f"{len(sent)} texted", *notes])
        log.info("%s: %s", self.instance, summary)
        if waits:
            opening = min(waits)
            raise PublishError(
                self.instance,
                f"{summary}; {len(waits)} outside their quiet hours, the first window opens {opening.isoformat()}",
                transient=True,
                retry_after=max(0.0, (opening - context.now).total_seconds()),
            )
        if not sent:
            raise PublishError(self.instance, f"nobody could be texted: {summary}", transient=False)
        return Receipt(
            location=credentials.url("/Messages.json"), sent_at=now_utc(), provider_ids=tuple(sent), notes=tuple(notes)
        )

    def not_at_provider(self, draft: Draft, addresses: Sequence[str]) -> list[str] | None:
        """The recipients of ``addresses`` Twilio's message list has no text of ``draft`` to; None without
        credentials. Raises CredentialError when the token cannot be read, PublishError when Twilio cannot be asked."""
        credentials = self.config.credentials
        if credentials is None:
            return None
        with self._session(credentials, resolve(credentials.auth_token)) as session:
            url = credentials.url("/Messages.json")
            find = finder(session, url, draft.text, self.config.from_number, self.config.timeout, self.lookup_skew)
            try:
                return [address for address in addresses if find(address, None) is None]
            except (requests.RequestException, ValueError) as exc:
                reason = f"Twilio's message list cannot be read ({type(exc).__name__})"
                raise PublishError(self.instance, reason, transient=True) from exc


def _collect(ended: Iterable[Sent], outcomes: list[DeliveryOutcome]) -> None:
    """Add the outcomes of sends that ended to ``outcomes``; raise the first one's error that stops the publish
    (the others' outcomes are added first, so every one is recorded)."""
    stops = []
    for outcome, stop in ended:
        outcomes.append(outcome)
        if stop is not None:
            stops.append(stop)
    if stops:
        raise stops[0]


def _invalid(address: str) -> str | None:
    try:
        e164(address)
    except ValueError:
        return "not a valid E.164 number"
    return None
