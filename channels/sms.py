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
  only if Twilio has no such text (:mod:`carecast_channels.sms_lookup`). Never texted twice, never left out.
- A 401 (20003) is the credentials: the publish stops, retried once the staff fix them. Anything else (a sender
  Twilio refuses) would fail for every recipient: the publish stops with a permanent error, the recipient in hand
  left retryable.

Delivery reports arrive later through Twilio's status callback (``status_callback``):
:meth:`SmsChannel.apply_status_callback` checks their signature and records ``delivered`` or ``failed``.

Without credentials ``publish`` writes to the outbox the ``Messages.json`` request of each recipient, and lists
the others with the reason they are skipped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from functools import partial
from http import HTTPStatus
from typing import Any, ClassVar, Literal, Self

import requests
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from requests.adapters import HTTPAdapter

from carecast.plugin import (
    LOST,
    Channel,
    ChannelError,
    ChannelSettings,
    ContentItem,
    CredentialError,
    DeliveryOutcome,
    DeliveryRecord,
    Draft,
    MeasureError,
    PracticeContext,
    PublishContext,
    PublishError,
    Receipt,
    RenderError,
    Request,
    Response,
    Route,
    SecretRef,
    Strict,
    now_utc,
    refusal,
    resolve,
)
from carecast.plugin import ChannelLedger as Ledger
from carecast.plugin.audience import (
    InFlight,
    QuietHours,
    Subscriber,
    addressed,
    batched,
    e164,
    handle_inbound,
    recipient_zones,
)
from carecast.plugin.text import LANGUAGES as WORD_LANGUAGES
from carecast.plugin.text import (
    drop_emoji,
    flatten,
    opening_sentences,
    shorten_middle,
    sms_measure,
    to_gsm,
    transliterate_to_gsm,
    without_repeats,
    words,
)
from carecast_channels.http import https_or_loopback, nothing_sent, retry_after
from carecast_channels.sms_lookup import finder, in_doubt, settle

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
#: Twilio errors about one recipient, and the suppression each one records (None: the delivery alone fails).
RECIPIENT_ERRORS: dict[int, str | None] = {21610: "opted_out", 21211: "invalid", 21614: "invalid", 30007: None}
#: What Twilio's error codes mean (twilio.com/docs/api/errors), in words that name no one.
TWILIO_ERRORS: dict[int, str] = {
    20003: "authentication failed (the Account SID or the Auth Token)",
    20404: "no such resource",
    20429: "too many requests",
    20500: "Twilio failed (internal error)",
    21211: "not a valid mobile number",
    21408: "sending to this region is not enabled on the account",
    21602: "the message has no body",
    21603: "the message has no sender",
    21604: "the message has no recipient",
    21606: "the sender cannot send SMS",
    21610: "the recipient opted out (replied STOP)",
    21612: "the recipient cannot be reached from this sender",
    21614: "not a mobile number",
    21617: "the body is over 1600 characters",
    30007: "carrier filtered",
}
#: A request is tried at most this often within a publish, however much of the retry budget is left.
MAX_ATTEMPTS = 4
#: Seconds a status callback waits for its message's send to be recorded (Twilio can report before we record).
CALLBACK_WAIT = 5.0
#: Seconds between two recordings of a chunk's outcomes: well within CALLBACK_WAIT.
RECORD_EVERY = 1.0
#: Backoff before the second attempt when Twilio gives no Retry-After; doubled each time after.
FIRST_BACKOFF = 0.5


#: The footer of every text unless the practice words its own: translated per item (carecast/words.py).
DEFAULT_OPT_OUT = "Reply STOP to opt out"


class TwilioCredentials(Strict):
    """``channels.<name>.credentials``: the Twilio account; only the Auth Token is secret, named by reference."""

    account_sid: str = Field(pattern=r"^AC[0-9a-f]{32}$", description="the Account SID (AC...), not a secret")
    auth_token: SecretRef = Field(description="{env: TWILIO_AUTH_TOKEN} or {block: twilio-auth-token}")
    api_base: AnyHttpUrl = Field(AnyHttpUrl("https://api.twilio.com"), description="the API's base URL")

    @field_validator("api_base")
    @classmethod
    def _secure(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        # The Auth Token travels to it: never in clear text or to an internal address, except to a test server.
        return https_or_loopback(value)

    def url(self, path: str) -> str:
        return f"{str(self.api_base).rstrip('/')}/{API_VERSION}/Accounts/{self.account_sid}{path}"


class SmsConfig(ChannelSettings):
    """``channels.<name>`` of type ``sms``."""

    from_number: str | None = Field(None, description="the sending number, E.164 (+13125550100)")
    messaging_service_sid: str | None = Field(
        None, pattern=r"^MG[0-9a-f]{32}$", description="a Twilio Messaging Service (MG...) instead of from_number"
    )
    status_callback: AnyHttpUrl | None = Field(None, description="where Twilio reports each message's delivery")
    opt_out_text: str = Field(
        DEFAULT_OPT_OUT,
        description="the footer of every text; must name STOP (the default is said in the item's language)",
    )
    max_segments: int | None = Field(None, ge=1, le=10, description="lowers the channel's 3 segments")
    quiet_hours: QuietHours = Field(default_factory=QuietHours, description="when recipients may be texted")
    timeout: float = Field(10.0, gt=0, le=120, description="seconds to wait for one answer from Twilio")
    retry_budget: float = Field(
        10.0, ge=0, le=300, description="seconds a publish may wait on 429/5xx before leaving the rest for next run"
    )
    emoji: Literal["drop", "keep"] = Field(
        "drop", description="drop an item's emoji (GSM-7, twice the text per segment), or keep them when they fit"
    )
    credentials: TwilioCredentials | None = Field(None, description="send through Twilio; absent: write to the outbox")
    #: Twilio's REST API takes several requests at once from an account (it answers 429/20429 beyond its concurrency
    #: limit, support.twilio.com "API concurrency"); a handful at once is what one process uses well.
    max_concurrency: ClassVar[int] = 8

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        return None if value is None else e164(value)

    @field_validator("opt_out_text")
    @classmethod
    def _names_stop(cls, value: str) -> str:
        # Carriers and the TCPA expect the standard keyword; a footer without it is no opt-out instruction.
        if "STOP" not in value.split():
            raise ValueError(f"opt-out wording that names STOP, such as 'Reply STOP to opt out', not {value!r}")
        return value

    @model_validator(mode="after")
    def _a_sender(self) -> Self:
        if self.from_number is None and self.messaging_service_sid is None:
            raise ValueError("from_number or messaging_service_sid: every text needs a sender")
        return self


class SmsChannel(Channel):
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
                body = _cut(wordings[-1], text, limit, fewest=bool(link))
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
        account = _json(response)
        if response.status_code == 429 or response.status_code >= 500:
            raise PublishError(self.instance, _twilio_error(response, account), transient=True)
        if response.status_code != 200 or account.get("status") != "active":
            why = _twilio_error(response, account) if response.status_code != 200 else f"is {account.get('status')}"
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

    def apply_status_callback(
        self, ledger: Ledger, url: str, params: Mapping[str, str], signature: str, *, wait: float = CALLBACK_WAIT
    ) -> DeliveryRecord | None:
        """Record what a Twilio status callback says about a message, once it is proven to come from Twilio.

        ``url`` is the full URL Twilio called (``status_callback``), ``params`` its form fields (``MessageSid``,
        ``MessageStatus``, ``ErrorCode``), ``signature`` its ``X-Twilio-Signature``. ``delivered`` (or ``read``)
        marks the delivery delivered; ``undelivered`` or ``failed`` marks it failed for good, so it is never sent
        again (30007: the carrier filtered this text). Callbacks arrive late, twice and out of order: the first
        final status stands and the others change nothing. A callback can overtake the recording of its own send,
        so an unknown ``MessageSid`` is waited for up to ``wait`` seconds. Returns the delivery as recorded, or None
        when the ledger has no message with that ``MessageSid``.

        Raises ChannelError when no credentials are configured or the signature does not match (the callback is
        refused); CredentialError when the Auth Token is unset.
        """
        if self.config.credentials is None:
            raise ChannelError(self.instance, "status callbacks need Twilio credentials to check their signature")
        token = resolve(self.config.credentials.auth_token)
        if not signature_matches(twilio_signature(token, url, params), signature):
            raise ChannelError(self.instance, "a status callback whose X-Twilio-Signature does not match: refused")
        sid, status, code = params.get("MessageSid", ""), params.get("MessageStatus"), params.get("ErrorCode")
        if not (sid.isascii() and sid.isalnum()):
            return None  # no message of ours: Twilio's ids are letters and digits (a NUL would fail the database)
        if code is not None and not (code.isascii() and code.isdigit()):
            code = None  # Twilio's error codes are numbers; anything else is not recorded
        deadline = time.monotonic() + wait
        while ledger.delivery_by_provider_id(sid) is None:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        if status in ("delivered", "read"):
            ledger.settle_delivery(sid, "delivered")
        elif status in ("undelivered", "failed"):
            why = "carrier filtered; this text is never sent to them again" if code == "30007" else status
            ledger.settle_delivery(sid, "failed", error=f"Twilio {code or status}: {why}")
        return ledger.delivery_by_provider_id(sid)

    def form(self, to: str, body: str) -> dict[str, str]:
        """The Messages API form fields of one text: ``To``, ``Body``, the sender, and ``StatusCallback`` if any."""
        fields = {"To": to, "Body": body}
        if self.config.from_number:
            fields["From"] = self.config.from_number
        if self.config.messaging_service_sid:
            fields["MessagingServiceSid"] = self.config.messaging_service_sid
        if self.config.status_callback:
            fields["StatusCallback"] = str(self.config.status_callback)
        return fields

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
            find = finder(session, credentials.url("/Messages.json"), draft.text, sender, self.config.timeout)
            doubtful = settle(ledger, publication, find)
            reachable = (pair for pair in self._reachable(subscribers, context.now, skipped) if pair[0] not in doubtful)
            # Claimed together: at least as many as may be in flight at once.
            chunks = batched(reachable, max(context.delivery_chunk, concurrency))
            try:
                for chunk in chunks:
                    context.stop_if_asked(self.instance)
                    openings = dict(chunk)
                    # The chunk is claimed before any of it is sent, in the transaction recording the chunk before;
                    # its outcomes are recorded at least every RECORD_EVERY seconds too: Twilio's status callbacks
                    # wait (CALLBACK_WAIT) for their message's record.
                    claimed = ledger.claim_deliveries(publication, list(openings), finished=outcomes)
                    outcomes, recorded = [], set()
                    last_record = time.monotonic()
                    for address in claimed:
                        context.stop_if_asked(self.instance)
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

    def _text(
        self,
        session: requests.Session,
        credentials: TwilioCredentials,
        ledger: Ledger,
        draft: Draft,
        address: str,
        deadline: float,
    ) -> Sent:
        """Send one claimed text and say how it ended: its delivery's outcome, and the PublishError that stops the
        publish, if any (transient when Twilio stays throttled or unreachable: the rest is left for the next run;
        a CredentialError for a 401; permanent for another refusal that is not about this recipient). A lost answer
        stops nothing: the recipient is looked up at Twilio by the next run. Raises LedgerError when a recipient
        error's suppression cannot be recorded."""
        try:
            response = self._post(session, credentials, self.form(address, draft.text), deadline)
        except PublishError as exc:
            return DeliveryOutcome(address, "failed", error=exc.reason, transient=True), exc
        except requests.RequestException:
            # Twilio may have it: the next run looks it up in Twilio's message list before texting them again. It
            # concerns this recipient only: the batch goes on, and the publication ends transient (``_by_twilio``).
            return DeliveryOutcome(address, "failed", error=LOST, transient=True), None
        return self._outcome(ledger, address, response)

    def _outcome(self, ledger: Ledger, address: str, response: requests.Response) -> Sent:
        """What Twilio's answer to one claimed message means for its delivery; a recipient error suppresses them.

        A refusal that is not about this recipient comes with an error to stop the publish, as it would hit every one
        (the delivery is left retryable): a CredentialError for a 401 (retried once the staff fix the credential),
        else a PublishError, transient or not as :func:`carecast.channel.refusal` reads its status.
        """
        message = _json(response)
        if response.status_code in (200, 201) and message.get("sid"):
            return DeliveryOutcome(address, "sent", provider_id=str(message["sid"])), None
        why = _twilio_error(response, message)
        code = message.get("code")
        if code not in RECIPIENT_ERRORS:
            # Not this recipient's fault: left retryable should the publication ever be retried. A 401 (20003) is
            # the Auth Token or Account SID: the staff fix it, then the rest is sent (the shared reading).
            where = f"channels.{self.instance}.credentials"
            stop = refusal(self.instance, why, response.status_code, credential=where)
            return DeliveryOutcome(address, "failed", error=why, transient=True), stop
        if (status := RECIPIENT_ERRORS[code]) is not None:
            ledger.suppress(self.name, address, status, why)
        return DeliveryOutcome(address, "failed", error=why), None

    def _post(
        self, session: requests.Session, credentials: TwilioCredentials, form: dict[str, str], deadline: float
    ) -> requests.Response:
        """POST one message, retrying 429, 5xx and connections never made with backoff until ``deadline`` (monotonic).

        Raises PublishError (transient, ``retry_after`` when Twilio said) once the attempts or the budget run out;
        requests.RequestException, never retried, when the request may have reached Twilio (its answer was lost).
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            backoff = FIRST_BACKOFF * 2 ** (attempt - 1)
            try:
                response = session.post(credentials.url("/Messages.json"), data=form, timeout=self.config.timeout)
            except requests.RequestException as exc:
                if not nothing_sent(exc):
                    raise
                why, wait = f"Twilio did not answer ({type(exc).__name__})", backoff
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response
                why = _twilio_error(response, _json(response))
                asked = retry_after(response.headers)
                wait = backoff if asked is None else asked
            if attempt == MAX_ATTEMPTS or time.monotonic() + wait > deadline:
                break
            log.warning("%s: %s; trying again in %.1fs", self.instance, why, wait)
            time.sleep(wait)
        raise PublishError(self.instance, f"{why}; the rest is left for the next run", transient=True, retry_after=wait)

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
            find = finder(session, url, draft.text, self.config.from_number, self.config.timeout)
            try:
                return [address for address in addresses if find(address) is None]
            except (requests.RequestException, ValueError) as exc:
                reason = f"Twilio's message list cannot be read ({type(exc).__name__})"
                raise PublishError(self.instance, reason, transient=True) from exc

    @contextmanager
    def _session(
        self, credentials: TwilioCredentials, token: SecretStr, concurrency: int = 1
    ) -> Iterator[requests.Session]:
        with requests.Session() as session:
            # One connection per send in flight, reused from text to text.
            session.mount(str(credentials.api_base), HTTPAdapter(pool_connections=1, pool_maxsize=concurrency))
            # The token leaves its SecretStr only here, into the Authorization header.
            session.auth = (credentials.account_sid, token.get_secret_value())
            session.headers["Accept"] = "application/json"
            yield session


def _cut(summary: str, text: Callable[[str], str], limit: int, *, fewest: bool) -> str:
    """``summary`` cut in its middle so that ``text(summary)`` fits in ``limit`` segments: the opening and the last
    sentence (the call to action) stay, as do the sender prefix, the link and the opt-out footer around it.

    With ``fewest`` (the text carries a link: the story is one tap away, and every segment is billed) the text takes
    the fewest segments that hold the summary's first sentence whole: its middle cut when that keeps the first
    sentence and the last one, else its opening sentences alone. Raises MeasureError when not even a word of the
    summary fits.
    """

    def within(segments: int) -> Callable[[str], bool]:
        return lambda body: sms_measure(text(body)).segments <= segments

    for segments in range(1, limit) if fewest else ():
        lead = opening_sentences(summary, within(segments))
        if lead:
            cut = shorten_middle(summary, within(segments), ellipsis="...")
            # A cut that lost the last sentence ends mid-sentence ("opens at 7 a.m. on..."): whole sentences read
            # better, and the link carries the rest.
            return cut if cut.startswith(lead) and not cut.endswith("...") else lead
    return shorten_middle(summary, within(limit), ellipsis="...")


def twilio_signature(token: SecretStr, url: str, params: Mapping[str, str]) -> str:
    """Twilio's ``X-Twilio-Signature`` of a request: base64 of the HMAC-SHA1, keyed by the Auth Token, of the full
    URL followed by every POST field's name and value, sorted by name."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(
        hmac.new(token.get_secret_value().encode(), payload.encode(), hashlib.sha1).digest()
    ).decode()


def signature_matches(expected: str, given: str) -> bool:
    """Whether a request's ``X-Twilio-Signature`` is ``expected``, in constant time, whatever characters it holds
    (``hmac.compare_digest`` refuses non-ASCII text: a forged header must be refused, not crash the server)."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))


#: How one send ended: its delivery's outcome, and the error that stops the publish after it, if any.
Sent = tuple[DeliveryOutcome, PublishError | CredentialError | None]


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


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _twilio_error(response: requests.Response, body: Mapping[str, Any]) -> str:
    """Twilio's error as "Twilio 21610 (HTTP 400): the recipient opted out (replied STOP)".

    Never Twilio's own ``message``: it names the number ("Invalid 'To' Phone Number: +1..."), and this text goes to
    logs, the ledger, receipts and run reports. A code not in ``TWILIO_ERRORS`` goes without words.
    """
    code = body.get("code")
    if code is None:
        return f"Twilio HTTP {response.status_code}"
    described = TWILIO_ERRORS.get(code) if isinstance(code, int) else None
    return f"Twilio {code} (HTTP {response.status_code})" + (f": {described}" if described else "")


STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
_FORBIDDEN = Response.text(HTTPStatus.FORBIDDEN, "Forbidden.", "refused: X-Twilio-Signature does not match")


class TwilioEndpoints:
    """Twilio's calls to the practice, for the SMS channels with credentials.

    - ``POST /twilio/status``: status callbacks, handed to :meth:`SmsChannel.apply_status_callback`, which records
      the message delivered or failed. 204; 403 when the signature is wrong.
    - ``POST /twilio/inbound``: a text a recipient sent to the practice's number. Once its signature is proven,
      :func:`carecast.compliance.handle_inbound` records STOP / START and the answer is TwiML carrying the one
      confirmation (or the HELP text), or an empty ``<Response/>``.

    Each request must be signed (``X-Twilio-Signature``) with one channel's Auth Token for the URL Twilio called.
    """

    def __init__(self, channels: Sequence[SmsChannel]) -> None:
        """Raises CredentialError when an Auth Token cannot be read: read once now, so the server stops at start."""
        self.channels = channels
        self._tokens()

    def routes(self) -> tuple[Route, ...]:
        announced = tuple(
            (f"channels.{channel.instance}.status_callback", str(channel.config.status_callback))
            for channel in self.channels
            if channel.config.status_callback is not None
        )
        return Route("POST", STATUS_PATH, self.status, announced), Route("POST", INBOUND_PATH, self.inbound)

    def status(self, request: Request, practice: PracticeContext) -> Response:
        params, signature = request.form(), request.headers.get("x-twilio-signature", "")
        try:
            delivery = self._signed_by(request.url, params, signature).apply_status_callback(
                practice.ledger, request.url, params, signature
            )
        except ChannelError:
            return _FORBIDDEN
        sid, status = params.get("MessageSid", "?"), params.get("MessageStatus", "?")
        recorded = f"recorded {delivery.state}" if delivery else "no such message"
        return Response(HTTPStatus.NO_CONTENT, content_type=None, note=f"{sid} {status}: {recorded}")

    def inbound(self, request: Request, practice: PracticeContext) -> Response:
        params = request.form()
        try:
            self._signed_by(request.url, params, request.headers.get("x-twilio-signature", ""))
        except ChannelError:
            return _FORBIDDEN
        sender = params.get("From", "")
        if not sender or not sender.isprintable():
            # Twilio sends a phone number or a short code; a control character would fail the database.
            return Response.text(HTTPStatus.BAD_REQUEST, "From is missing or not an address.")
        reply = handle_inbound(practice.ledger, practice.settings.practice, sender, params.get("Body", ""))
        response = ET.Element("Response")
        if reply is not None:
            ET.SubElement(response, "Message").text = reply
        twiml = ET.tostring(response, encoding="utf-8", xml_declaration=True)
        return Response(HTTPStatus.OK, twiml, "text/xml; charset=utf-8", "replied" if reply else "no reply")

    def _signed_by(self, url: str, params: dict[str, str], signature: str) -> SmsChannel:
        """The SMS channel whose Twilio Auth Token signed this request.

        Raises ChannelError when none did; CredentialError when a token cannot be read.
        """
        for channel, token in zip(self.channels, self._tokens(), strict=True):
            if signature_matches(twilio_signature(token, url, params), signature):
                return channel
        names = ", ".join(channel.instance for channel in self.channels)
        raise ChannelError(names, "X-Twilio-Signature does not match")

    def _tokens(self) -> list[SecretStr]:
        return [resolve(c.config.credentials.auth_token) for c in self.channels if c.config.credentials]
