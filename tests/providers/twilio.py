"""A local Twilio Messages API server: sends SMS into a record and reports delivery through signed status callbacks.

Endpoints (HTTP Basic auth with the account SID and auth token):

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded ``To``, ``From`` or
  ``MessagingServiceSid``, ``Body``, optional ``StatusCallback`` → 201 with Twilio's message JSON;
- ``GET /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}.json`` → the message with its latest status;
- ``GET /2010-04-01/Accounts/{AccountSid}.json`` → the account (how clients check credentials).

Errors use Twilio's JSON shape ``{"code", "message", "more_info", "status"}``: 20003 bad credentials, 20404
unknown resource, 21211 invalid ``To``, 21602 no body, 21603 no sender, 21604 no ``To``, 21610 recipient opted
out (``opted_out``). A body containing one of ``filtered_phrases`` is accepted but ends "undelivered" with
error 30007. With ``StatusCallback`` the server POSTs queued → sent → delivered/undelivered to it, form-encoded and
signed with ``X-Twilio-Signature``; only loopback callback URLs are called. :meth:`TwilioServer.throttle` queues
429/20429 replies with ``Retry-After``; ``messages_per_second`` answers 429 to messages beyond that rate (a token
bucket holding one second's worth, counted in ``throttled``); :meth:`LocalHttpServer.force` injects anything else
(e.g. 5xx).

Run by hand with ``python -m tests.providers.twilio --port 8025``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import itertools
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import gsm0338  # noqa: F401  # registers the "gsm03.38" codec that sms_segments encodes with
import requests

from tests.providers import LocalHttpServer, RecordedRequest, Reply, serve_by_hand

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_ACCOUNT = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)\.json$")
_MESSAGES = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>SM[0-9a-f]{{32}})\.json$")


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1, keyed by the auth token, of the full URL followed by each
    POST parameter's name and value, sorted by name."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def sms_segments(body: str) -> int:
    """How many segments Twilio bills for ``body``: GSM-7 when every character is in GSM 03.38 (escaped ones cost
    two septets), UCS-2 otherwise; 160/70 units fit one segment, 153/67 per part beyond, never splitting a character.
    """
    try:
        units = [len(char.encode("gsm03.38")) for char in body]
        single, part = 160, 153
    except UnicodeEncodeError:
        units = [len(char.encode("utf-16-le")) // 2 for char in body]
        single, part = 70, 67
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for cost in units:
        if used + cost > part:
            segments, used = segments + 1, 0
        used += cost
    return segments


@dataclass(frozen=True)
class TwilioCredentials:
    """The account the server accepts. Test values, not secrets."""

    account_sid: str = "AC" + "c0ffee" + "0" * 26
    auth_token: str = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class CallbackDelivery:
    """One status callback the server POSTed: where, what, how it was signed, and the receiver's status code
    (``None`` if it could not be reached or was not loopback)."""

    url: str
    params: dict[str, str]
    signature: str
    response_status: int | None


def _twilio_error(status: int, code: int, message: str) -> Reply:
    return Reply(
        status,
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
    )


# Apart from channels.newsletter's check on purpose: callbacks stay on this machine whatever that policy comes to allow.
def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TwilioServer(LocalHttpServer):
    """The Twilio Messages API with credentials, validation, opt-outs, carrier filtering and status callbacks."""

    def __init__(
        self,
        *,
        credentials: TwilioCredentials | None = None,
        opted_out: Iterable[str] = (),
        filtered_phrases: Iterable[str] = (),
        messages_per_second: float | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        #: Twilio's queue limit for the sender: a message beyond it is answered 429/20429 (None: no limit).
        self.messages_per_second = messages_per_second
        self._allowance = messages_per_second or 0.0
        self._allowance_at = time.monotonic()
        self.throttled = 0
        self.credentials = credentials or TwilioCredentials()
        self.opted_out = set(opted_out)
        self.filtered_phrases = tuple(filtered_phrases)
        self._messages: dict[str, dict[str, Any]] = {}
        self._callbacks: list[CallbackDelivery] = []
        self._callback_cv = threading.Condition(self._lock)
        self._callback_threads: list[threading.Thread] = []
        self._sids = (secrets.token_hex(16) for _ in itertools.count())

    # --- inspection and fault injection ------------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages as their current JSON resources, oldest first."""
        with self._lock:
            return [dict(message) for message in self._messages.values()]

    @property
    def callbacks(self) -> list[CallbackDelivery]:
        """Status callbacks delivered so far, in the order they were sent."""
        with self._lock:
            return list(self._callbacks)

    def wait_for_callbacks(self, count: int, timeout: float = 5.0) -> list[CallbackDelivery]:
        """Block until at least ``count`` callbacks were delivered and return them.

        Raises:
            TimeoutError: fewer arrived within ``timeout`` seconds.
        """
        with self._callback_cv:
            if not self._callback_cv.wait_for(lambda: len(self._callbacks) >= count, timeout):
                raise TimeoutError(f"{len(self._callbacks)} of {count} status callbacks within {timeout}s")
            return list(self._callbacks)

    def add_message(self, sent: dict[str, Any], created: datetime) -> dict[str, Any]:
        """A copy of message ``sent`` (same body, sender and recipient) Twilio created at ``created`` (sent by hand,
        or long ago), older than every message so far."""
        with self._lock:
            sid = "SM" + next(self._sids)
            stamp = format_datetime(created.astimezone(UTC))
            message = {**sent, "sid": sid, "date_created": stamp, "date_updated": stamp, "status": "delivered"}
            self._messages = {sid: message, **self._messages}
        return dict(message)

    def throttle(self, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` requests with 429, Twilio error 20429 and ``Retry-After``."""
        reply = _twilio_error(429, 20429, "Too Many Requests")
        self.force(*[Reply(reply.status, reply.body, {"Retry-After": str(retry_after)})] * times)

    def replay_callbacks(self, message_sid: str, statuses: Sequence[str]) -> None:
        """POST the already-sent callbacks of ``message_sid`` again, in the order of ``statuses`` (duplicates and
        out-of-order delivery, as Twilio does), and wait for them.

        Raises:
            KeyError: no callback with one of these statuses was sent for that message.
        """
        sent = {c.params["MessageStatus"]: c for c in self.callbacks if c.params["MessageSid"] == message_sid}
        for status in statuses:
            self._deliver(sent[status].url, sent[status].params)

    # --- dispatch ------------------------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        """Check Basic auth, then route by path."""
        if not self._authenticated(request):
            return _twilio_error(401, 20003, "Authenticate")
        for pattern, method, endpoint in (
            (_MESSAGES, "POST", self._create_message),
            (_MESSAGES, "GET", self._list_messages),
            (_MESSAGE, "GET", self._fetch_message),
            (_ACCOUNT, "GET", self._fetch_account),
        ):
            match = pattern.match(request.path)
            if match and request.method == method and match["account"] == self.credentials.account_sid:
                return endpoint(request, match)
        return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")

    def _authenticated(self, request: RecordedRequest) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return scheme == "Basic" and (user, password) == (self.credentials.account_sid, self.credentials.auth_token)

    def _fetch_account(self, request: RecordedRequest, match: re.Match[str]) -> Reply:
        sid = self.credentials.account_sid
        return Reply(
            200,
            {
                "sid": sid,
                "friendly_name": "CareCast test account",
                "status": "active",
                "type": "Full",
                "uri": f"/{API_VERSION}/Accounts/{sid}.json",
            },
        )

    def _list_messages(self, request: RecordedRequest, match: re.Match[str]) -> Reply:
        """The account's messages, newest first, filtered by ``To`` and ``From`` as Twilio does (``PageSize``)."""
        wanted = {key.lower(): request.query[key] for key in ("To", "From") if request.query.get(key)}
        with self._lock:
            found = [
                dict(message)
                for message in reversed(self._messages.values())
                if all(message.get(key) == value for key, value in wanted.items())
            ]
        size = int(request.query.get("PageSize", 50))
        return Reply(200, {"messages": found[:size], "next_page_uri": None, "page_size": size})

    def _fetch_message(self, request: RecordedRequest, match: re.Match[str]) -> Reply:
        with self._lock:
            message = self._messages.get(match["sid"])
            return (
                Reply(200, dict(message)) if message else _twilio_error(404, 20404, f"Message {match['sid']} not found")
            )

    def _over_rate(self) -> bool:
        """Whether this message exceeds ``messages_per_second``: a token bucket holding one second's worth."""
        if self.messages_per_second is None:
            return False
        with self._lock:
            now = time.monotonic()
            rate = self.messages_per_second
            self._allowance = min(rate, self._allowance + (now - self._allowance_at) * rate)
            self._allowance_at = now
            if self._allowance < 1:
                self.throttled += 1
                return True
            self._allowance -= 1
            return False

    def _create_message(self, request: RecordedRequest, match: re.Match[str]) -> Reply:
        if self._over_rate():
            throttled = _twilio_error(429, 20429, "Too Many Requests")
            return Reply(throttled.status, throttled.body, {"Retry-After": "1"})
        form: dict[str, str] = request.body if isinstance(request.body, dict) else {}
        to, sender, service, body = form.get("To"), form.get("From"), form.get("MessagingServiceSid"), form.get("Body")
        if not to:
            return _twilio_error(400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            return _twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not sender and not service:
            return _twilio_error(
                400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."
            )
        if not body:
            return _twilio_error(400, 21602, "Message body is required.")
        if to in self.opted_out:
            return _twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        with self._lock:  # requests arrive on threads of their own, several at once
            sid = "SM" + next(self._sids)
        now = format_datetime(datetime.now(UTC))
        uri = f"/{API_VERSION}/Accounts/{self.credentials.account_sid}/Messages/{sid}.json"
        message = {
            "account_sid": self.credentials.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(sms_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": to,
            "uri": uri,
        }
        with self._lock:
            self._messages[sid] = message
        return Reply(201, dict(message))

    # --- status callbacks -------------------------------------------------------------------------------------

    def after_reply(self, request: RecordedRequest, reply: Reply) -> None:
        """Report delivery of a newly created message to its ``StatusCallback``, off the request thread."""
        callback = request.body.get("StatusCallback") if isinstance(request.body, dict) else None
        sid = reply.body.get("sid") if isinstance(reply.body, dict) else None
        with self._lock:
            # A forced reply can look like a creation without one having happened.
            if not (callback and request.method == "POST" and sid in self._messages):
                return
            thread = threading.Thread(target=self._report, args=(sid, callback), daemon=True)
            self._callback_threads.append(thread)
        thread.start()

    def _report(self, sid: str, url: str) -> None:
        with self._lock:
            message = self._messages[sid]
        filtered = any(phrase in message["body"] for phrase in self.filtered_phrases)
        for status in ("queued", "sent", "undelivered" if filtered else "delivered"):
            params = {
                "AccountSid": message["account_sid"],
                "ApiVersion": API_VERSION,
                "From": message["from"] or "",
                "MessageSid": sid,
                "MessageStatus": status,
                "SmsSid": sid,
                "SmsStatus": status,
                "To": message["to"],
            }
            if message["messaging_service_sid"]:
                params["MessagingServiceSid"] = message["messaging_service_sid"]
            with self._lock:
                message["status"] = status
                message["date_updated"] = format_datetime(datetime.now(UTC))
                if status == "undelivered":
                    params["ErrorCode"] = "30007"
                    message["error_code"] = 30007
                    message["error_message"] = "Message filtered"
            self._deliver(url, params)

    def _deliver(self, url: str, params: dict[str, str]) -> None:
        signature = twilio_signature(self.credentials.auth_token, url, params)
        status: int | None = None
        if _is_loopback(url):
            try:
                status = requests.post(
                    url, data=params, headers={"X-Twilio-Signature": signature}, timeout=5
                ).status_code
            except requests.RequestException:
                status = None
        with self._callback_cv:
            self._callbacks.append(CallbackDelivery(url, params, signature, status))
            self._callback_cv.notify_all()

    def stop(self) -> None:
        """Finish pending status callbacks, then stop serving."""
        with self._lock:
            threads, self._callback_threads = self._callback_threads, []
        for thread in threads:
            thread.join()
        super().stop()


def _banner(server: TwilioServer) -> str:
    c = server.credentials
    return f"Twilio Messages fake on {server.url}\naccount_sid={c.account_sid} auth_token={c.auth_token}"


if __name__ == "__main__":
    serve_by_hand("Local Twilio Messages API fake", lambda port: TwilioServer(port=port), _banner)
