"""Sending one text through Twilio's Messages API: the request, its retries, what Twilio's answer means, and the
``X-Twilio-Signature`` Twilio signs its own calls with."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from carecast.plugin import (
    LOST,
    Channel,
    ChannelError,
    CredentialError,
    DeliveryOutcome,
    DeliveryRecord,
    Draft,
    PublishError,
    refusal,
    resolve,
)
from carecast.plugin import ChannelLedger as Ledger
from carecast_channels.http import nothing_sent, retry_after
from carecast_channels.sms.config import SmsConfig, TwilioCredentials

log = logging.getLogger(__name__)

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
#: Backoff before the second attempt when Twilio gives no Retry-After; doubled each time after.
FIRST_BACKOFF = 0.5

#: How one send ended: its delivery's outcome, and the error that stops the publish after it, if any.
Sent = tuple[DeliveryOutcome, PublishError | CredentialError | None]


class TwilioSender(Channel):
    """The Twilio side of :class:`carecast_channels.sms.SmsChannel`: one claimed text sent, retried and read, and the
    status callbacks Twilio reports its delivery with."""

    config: SmsConfig

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
        message = json_body(response)
        if response.status_code in (200, 201) and message.get("sid"):
            return DeliveryOutcome(address, "sent", provider_id=str(message["sid"])), None
        why = twilio_error(response, message)
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
                why = twilio_error(response, json_body(response))
                asked = retry_after(response.headers)
                wait = backoff if asked is None else asked
            if attempt == MAX_ATTEMPTS or time.monotonic() + wait > deadline:
                break
            log.warning("%s: %s; trying again in %.1fs", self.instance, why, wait)
            time.sleep(wait)
        raise PublishError(self.instance, f"{why}; the rest is left for the next run", transient=True, retry_after=wait)

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
            # The environment's proxy and CA bundle, as requests reads them, once for the session: read at every
            # request, they cost two scans of os.environ a text (0.1 s a thousand). Every request goes to api_base.
            found = session.merge_environment_settings(str(credentials.api_base), {}, None, None, None)
            session.proxies, session.verify, session.trust_env = found["proxies"], found["verify"], False
            yield session


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


def json_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def twilio_error(response: requests.Response, body: Mapping[str, Any]) -> str:
    """Twilio's error as "Twilio 21610 (HTTP 400): the recipient opted out (replied STOP)".

    Never Twilio's own ``message``: it names the number ("Invalid 'To' Phone Number: +1..."), and this text goes to
    logs, the ledger, receipts and run reports. A code not in ``TWILIO_ERRORS`` goes without words.
    """
    code = body.get("code")
    if code is None:
        return f"Twilio HTTP {response.status_code}"
    described = TWILIO_ERRORS.get(code) if isinstance(code, int) else None
    return f"Twilio {code} (HTTP {response.status_code})" + (f": {described}" if described else "")
