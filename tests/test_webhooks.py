"""The practice's webhooks on the wire: a real server on 127.0.0.1 in front of a real SQLite ledger, called with
``requests`` the way Twilio and mail providers call it. Requests are signed with the Twilio fake's own signature
function (tests/providers/twilio.py), not with the code under test.

The sample SMS audience includes +13125550117 (Maria, subscribed with consent); the newsletter's includes
maria.gonzalez@example.com (subscribed with consent).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from wsgiref.validate import validator

import pytest
import requests
from pydantic import SecretStr

from carecast import report
from carecast.config import Settings
from carecast.ledger import Ledger
from carecast.model import ContentItem, Draft, Receipt, content_hash, now_utc
from carecast.pipeline import make_channel, sync_audience
from carecast.practice import load_settings
from carecast.unsubscribe import make_token
from carecast.webhooks import Limits, WebhookApp, make_server
from carecast_channels.newsletter import NewsletterChannel
from tests.conftest import write_config
from tests.providers.twilio import twilio_signature

AUTH_TOKEN = "tok-webhooks-5e1d9a7c3b8f2e4d6a0c"
UNSUBSCRIBE_SECRET = "unsub-webhooks-hmac-key-93b1"
ACCOUNT_SID = "AC" + "c0ffee" + "0" * 26
#: What Twilio and subscribers are told; a proxy or tunnel forwards it to the local server.
PUBLIC = "https://hooks.oakviewpt.com"
#: An ampersand and angle brackets in the practice's name must come out of TwiML escaped, and back intact.
PRACTICE = "Oakview Physical Therapy & Rehab <Lincoln Park>"
MARIA_SMS = "+13125550117"
MARIA_EMAIL = "maria.gonzalez@example.com"
ENV = {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "CARECAST_TEST_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET}


def configure(tmp_path: Path, **changes: Any) -> Settings:
    """The sample config with Twilio credentials and an unsubscribe secret, both by environment reference."""
    sms = {
        "credentials": {"account_sid": ACCOUNT_SID, "auth_token": {"env": "TWILIO_AUTH_TOKEN"}},
        "status_callback": f"{PUBLIC}/twilio/status",
    }
    newsletter = {
        "unsubscribe_secret": {"env": "CARECAST_TEST_UNSUBSCRIBE_SECRET"},
        "unsubscribe_url": f"{PUBLIC}/unsubscribe",
    }
    base = {"practice": {"name": PRACTICE}, "channels": {"sms": sms, "newsletter": newsletter}}
    return load_settings(write_config(tmp_path, base | changes))


class Hooks:
    """The webhooks served on 127.0.0.1 (the app wrapped in wsgiref's WSGI conformance checker) over a ledger
    holding the sample audience."""

    def __init__(
        self,
        tmp_path: Path,
        public_url: str | None,
        limits: Limits | None = None,
        ledger_url: str | None = None,
        **changes: Any,
    ) -> None:
        self.settings = configure(tmp_path, **changes)
        self.ledger = Ledger(ledger_url or f"sqlite:///{tmp_path / 'ledger.db'}")
        sync_audience(self.settings, self.ledger)
        app = validator(WebhookApp(self.settings, self.ledger, public_url))
        self.server = make_server(app, "127.0.0.1", 0, limits)
        self.local = f"http://127.0.0.1:{self.server.server_port}"
        #: The base URL Twilio signs requests for.
        self.signed_base = public_url or self.local
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.ledger.close()

    def twilio(self, path: str, params: dict[str, str], token: str = AUTH_TOKEN, **kwargs: Any) -> requests.Response:
        """POST ``params`` to ``path`` as Twilio does: form-encoded, signed for the URL Twilio was given."""
        signed_for = kwargs.pop("signed_for", self.signed_base + path)
        signature = twilio_signature(token, signed_for, params)
        return requests.post(self.local + path, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)

    def status(self, channel_type: str, address: str) -> str:
        [subscriber] = [s for s in self.ledger.subscribers(channel_type) if s.address == address]
        return subscriber.status

    def sent_texts(self, *recipients: tuple[str, str]) -> int:
        """A publication of the SMS channel whose texts to ``recipients`` (address, MessageSid) Twilio accepted."""
        item = ContentItem(
            id="story-thanks",
            source="stories",
            kind="recognition",
            title="Thank you",
            url=None,
            summary_html="<p>Thank you</p>",
            summary_text="Thank you",
            published=datetime(2026, 2, 1, tzinfo=UTC),
            content_hash=content_hash("story-thanks"),
        )
        self.ledger.upsert_items([item])
        draft = Draft(channel="sms", item_ids=(item.id,), parts=("Oakview PT: Thank you! Reply STOP to opt out",))
        publication = self.ledger.claim(self.ledger.save_draft(draft, "+13125550100", "approved"))
        for address, sid in recipients:
            self.ledger.claim_delivery(publication, address)
            self.ledger.finish_delivery(publication, address, "sent", provider_id=sid)
        return publication


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def hooks(tmp_path: Path) -> Iterator[Hooks]:
    served = Hooks(tmp_path, PUBLIC)
    yield served
    served.stop()


def sid(n: int) -> str:
    return f"SM{n:032x}"


def callback(message_sid: str, status: str, error_code: str = "") -> dict[str, str]:
    """A status callback's form as Twilio sends it (``ErrorCode`` blank unless the message failed: signed too)."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "ErrorCode": error_code,
        "From": "+13125550100",
        "MessageSid": message_sid,
        "MessageStatus": status,
        "SmsSid": message_sid,
        "SmsStatus": status,
        "To": MARIA_SMS,
    }


def inbound(body: str, sender: str = MARIA_SMS) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": sender,
        "FromCity": "CHICAGO",
        "MessageSid": sid(99),
        "NumMedia": "0",
        "To": "+13125550100",
    }


def twiml_messages(response: requests.Response) -> list[str]:
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return [message.text or "" for message in root.iter("Message")]


# -- Twilio status callbacks -----------------------------------------------------------------------------------


def test_signed_status_callbacks_record_delivery_and_failure(hooks: Hooks) -> None:
    publication = hooks.sent_texts((MARIA_SMS, sid(1)), ("+17735550123", sid(2)))
    assert hooks.twilio("/twilio/status", callback(sid(1), "sent")).status_code == 204
    assert hooks.ledger.deliveries(publication)[MARIA_SMS].state == "sent"
    assert hooks.twilio("/twilio/status", callback(sid(1), "delivered")).status_code == 204
    assert hooks.twilio("/twilio/status", callback(sid(2), "undelivered", "30007")).status_code == 204
    deliveries = hooks.ledger.deliveries(publication)
    assert deliveries[MARIA_SMS].state == "delivered"
    assert deliveries["+17735550123"].state == "failed"
    assert "30007" in (deliveries["+17735550123"].error or "")


def test_twilio_delivery_reports_are_the_report_s_numbers_for_texts(hooks: Hooks) -> None:
    """Issue 21: an SMS channel's own numbers are Twilio's status callbacks, shown per send by the report."""
    texts = ((MARIA_SMS, sid(4)), ("+17735550123", sid(5)), ("+17735550124", sid(6)))
    publication = hooks.sent_texts(*texts)
    hooks.ledger.record_sent(publication, Receipt("twilio", now_utc(), tuple(message for _, message in texts)))
    hooks.twilio("/twilio/status", callback(sid(4), "delivered"))
    hooks.twilio("/twilio/status", callback(sid(5), "delivered"))
    assert [d.state for d in hooks.ledger.deliveries(publication).values()].count("delivered") == 2
    built = report.build(hooks.settings, hooks.ledger, now_utc() - timedelta(days=1), now_utc() + timedelta(minutes=1))
    [row] = built.rows
    assert (row.channel, row.sent, row.delivered) == ("sms", 3, 2)


@pytest.mark.parametrize(
    "forgery",
    [
        pytest.param({"token": "not-the-auth-token"}, id="another-token"),
        pytest.param({"signed_for": "http://127.0.0.1/twilio/status"}, id="signed-for-another-url"),
        pytest.param({"tamper": {"MessageStatus": "undelivered", "ErrorCode": "30007"}}, id="fields-changed"),
        pytest.param({"no_signature": True}, id="no-signature"),
    ],
)
def test_a_forged_status_callback_is_refused_and_changes_nothing(hooks: Hooks, forgery: dict[str, Any]) -> None:
    publication = hooks.sent_texts((MARIA_SMS, sid(3)))
    params = callback(sid(3), "delivered")
    if "tamper" in forgery:
        signature = twilio_signature(AUTH_TOKEN, f"{PUBLIC}/twilio/status", params)
        response = requests.post(
            hooks.local + "/twilio/status",
            data=params | forgery["tamper"],
            headers={"X-Twilio-Signature": signature},
            timeout=10,
        )
    elif "no_signature" in forgery:
        response = requests.post(hooks.local + "/twilio/status", data=params, timeout=10)
    else:
        response = hooks.twilio("/twilio/status", params, **forgery)
    assert response.status_code == 403
    assert AUTH_TOKEN not in response.text
    assert hooks.ledger.deliveries(publication)[MARIA_SMS].state == "sent"


def test_without_a_public_url_the_signature_is_for_the_url_called(tmp_path: Path) -> None:
    served = Hooks(tmp_path, public_url=None)
    try:
        publication = served.sent_texts((MARIA_SMS, sid(4)))
        refused = served.twilio("/twilio/status", callback(sid(4), "delivered"), signed_for=f"{PUBLIC}/twilio/status")
        assert refused.status_code == 403
        assert served.twilio("/twilio/status", callback(sid(4), "delivered")).status_code == 204
        assert served.ledger.deliveries(publication)[MARIA_SMS].state == "delivered"
    finally:
        served.stop()


# -- inbound texts ---------------------------------------------------------------------------------------------


def test_stop_suppresses_every_text_and_start_lifts_it(hooks: Hooks) -> None:
    [confirmation] = twiml_messages(hooks.twilio("/twilio/inbound", inbound("Stop")))
    assert confirmation.startswith("Oakview PT: You are unsubscribed")
    assert "START" in confirmation
    assert hooks.status("sms", MARIA_SMS) == "opted_out"
    sms = make_channel(hooks.settings, "sms")
    assert MARIA_SMS not in {s.address for s in hooks.ledger.subscribers(sms.name) if s.can_receive}

    [again] = twiml_messages(hooks.twilio("/twilio/inbound", inbound("please stop texting me")))
    assert again == confirmation and hooks.status("sms", MARIA_SMS) == "opted_out"

    [resubscribed] = twiml_messages(hooks.twilio("/twilio/inbound", inbound("START")))
    assert resubscribed.startswith("Oakview PT: You are resubscribed")
    assert hooks.status("sms", MARIA_SMS) == "subscribed"


def test_help_answers_contact_details_escaped_and_changes_nothing(hooks: Hooks) -> None:
    response = hooks.twilio("/twilio/inbound", inbound("HELP"))
    assert b"&amp; Rehab &lt;Lincoln Park&gt;" in response.content
    [reply] = twiml_messages(response)
    assert reply.startswith(f"{PRACTICE}: call +1 312 555 0142 or email hello@oakviewpt.com")
    assert hooks.status("sms", MARIA_SMS) == "subscribed"


def test_any_other_text_gets_an_empty_response(hooks: Hooks) -> None:
    response = hooks.twilio("/twilio/inbound", inbound("See you at the end of my appointment on Tuesday"))
    assert twiml_messages(response) == []
    assert hooks.status("sms", MARIA_SMS) == "subscribed"


def test_a_forged_stop_is_refused(hooks: Hooks) -> None:
    response = hooks.twilio("/twilio/inbound", inbound("STOP"), token="guessed")
    assert response.status_code == 403
    assert hooks.status("sms", MARIA_SMS) == "subscribed"


# -- one-click unsubscribe -------------------------------------------------------------------------------------


def token_for(hooks: Hooks, address: str = MARIA_EMAIL, secret: str = UNSUBSCRIBE_SECRET) -> str:
    newsletter = make_channel(hooks.settings, "newsletter")
    assert isinstance(newsletter, NewsletterChannel)
    # A signed (version 1) token as links sent before opaque tokens carry; recent, so it has not expired.
    return make_token(SecretStr(secret), newsletter.list_id(), address, datetime.now(UTC).replace(microsecond=0))


class Forms(HTMLParser):
    """The forms of a page: action, method and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attributes.get("action"), "method": attributes.get("method"), "fields": {}})
        elif tag == "input" and attributes.get("type") == "hidden":
            self.forms[-1]["fields"][attributes["name"]] = attributes.get("value")


def test_opening_the_link_changes_nothing_and_its_button_unsubscribes(hooks: Hooks) -> None:
    url = f"{hooks.local}/unsubscribe?t={token_for(hooks)}"
    for _ in range(2):  # a mail scanner, then the subscriber
        page = requests.get(url, timeout=10)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert hooks.status("newsletter", MARIA_EMAIL) == "subscribed"
    parser = Forms()
    parser.feed(page.text)
    form, all_email = parser.forms  # this list, or every list of the practice (CAN-SPAM)
    assert form["method"] == all_email["method"] == "post"
    assert all_email["fields"] == {"all_email": "yes"}
    pressed = requests.post(urljoin(url, form["action"]), data=form["fields"], timeout=10)
    assert pressed.status_code == 200 and "no more emails" in pressed.text
    assert hooks.status("newsletter", MARIA_EMAIL) == "unsubscribed"


def test_one_click_post_unsubscribes_once(hooks: Hooks) -> None:
    before = {s.address: s.status for s in hooks.ledger.subscribers("newsletter")}
    url = f"{hooks.local}/unsubscribe?t={token_for(hooks)}"
    for _ in range(2):  # a provider may send it twice: the first record stands
        response = requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10)
        assert response.status_code == 200
    after = {s.address: s.status for s in hooks.ledger.subscribers("newsletter")}
    assert after == before | {MARIA_EMAIL: "unsubscribed"}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    "make_bad",
    [
        pytest.param(lambda good, other: good[:-2] + ("AA" if not good.endswith("AA") else "BB"), id="signature"),
        pytest.param(lambda good, other: other, id="another-secret"),
        pytest.param(lambda good, other: "", id="missing"),
        pytest.param(lambda good, other: "not a token", id="garbage"),
    ],
)
def test_a_bad_token_is_refused_without_details(hooks: Hooks, method: str, make_bad: Any) -> None:
    bad = make_bad(token_for(hooks), token_for(hooks, secret="someone-elses-secret"))
    response = requests.request(
        method, f"{hooks.local}/unsubscribe", params={"t": bad}, data={"List-Unsubscribe": "One-Click"}, timeout=10
    )
    assert response.status_code == 400
    assert response.text == "This unsubscribe link is not valid.\n"
    assert hooks.status("newsletter", MARIA_EMAIL) == "subscribed"


# -- the server itself -----------------------------------------------------------------------------------------


def test_unknown_paths_and_methods(hooks: Hooks) -> None:
    assert requests.get(f"{hooks.local}/admin", timeout=10).status_code == 404
    refused = requests.get(f"{hooks.local}/twilio/status", timeout=10)
    assert refused.status_code == 405 and refused.headers["Allow"] == "POST"
    assert requests.put(f"{hooks.local}/unsubscribe", timeout=10).headers["Allow"] == "GET, POST"
    huge = requests.post(f"{hooks.local}/twilio/inbound", data={"Body": "x" * 100_000}, timeout=10)
    assert huge.status_code == 413


def stalled(hooks: Hooks, count: int) -> list[socket.socket]:
    """``count`` clients that send a status callback's headers and part of its body, then nothing more."""
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", hooks.server.server_port))
        client.sendall(
            b"POST /twilio/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 400\r\n\r\nAccountSid=AC"
        )
        clients.append(client)
    return clients


def test_stalled_bodies_do_not_stop_a_signed_request(hooks: Hooks) -> None:
    publication = hooks.sent_texts((MARIA_SMS, sid(6)))
    clients = stalled(hooks, 300)
    try:
        started = time.monotonic()
        answered = hooks.twilio("/twilio/status", callback(sid(6), "delivered"))
        waited = time.monotonic() - started
        assert answered.status_code == 204
        assert waited < 2.0, waited  # the bound is 1 s; the margin is for a busy machine
        assert hooks.ledger.deliveries(publication)[MARIA_SMS].state == "delivered"
    finally:
        for client in clients:
            client.close()


def test_a_body_that_stalls_past_the_deadline_is_refused(tmp_path: Path) -> None:
    served = Hooks(tmp_path, PUBLIC, Limits(body_timeout=0.5))
    try:
        [client] = stalled(served, 1)
        client.settimeout(10)
        with client:
            answer = client.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408 ")
    finally:
        served.stop()


def test_headers_that_trickle_past_the_deadline_lose_the_connection(tmp_path: Path) -> None:
    served = Hooks(tmp_path, PUBLIC, Limits(header_timeout=0.5, keep_alive=30))
    try:
        with socket.create_connection(("127.0.0.1", served.server.server_port)) as client:
            client.settimeout(10)
            client.sendall(b"GET /unsubscribe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while not answer.endswith(b"not valid.\n"):
                answer += client.recv(4096)
            assert answer.startswith(b"HTTP/1.1 400 ")  # answered, and kept alive
            client.sendall(b"GET /unsubscribe HTTP/1.1\r\nHost: 1")  # the next request's headers stall
            assert client.recv(4096) == b""  # closed by the server
    finally:
        served.stop()


def test_each_request_is_logged_without_secrets_tokens_or_numbers(
    hooks: Hooks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="carecast.webhooks")
    token = token_for(hooks)
    hooks.sent_texts((MARIA_SMS, sid(5)))
    hooks.twilio("/twilio/status", callback(sid(5), "delivered"))
    hooks.twilio("/twilio/status", callback(sid(5), "delivered"), token="forged")
    hooks.twilio("/twilio/inbound", inbound("STOP"))
    requests.get(f"{hooks.local}/unsubscribe?t={token}", timeout=10)
    requests.post(f"{hooks.local}/unsubscribe?t={token}", data={"List-Unsubscribe": "One-Click"}, timeout=10)
    requests.post(f"{hooks.local}/unsubscribe?t={token[:-3]}xyz", timeout=10)
    lines = [record.getMessage() for record in caplog.records if record.name == "carecast.webhooks"]
    assert [line.split(" ")[:3] for line in lines] == [
        ["POST", "/twilio/status", "204"],
        ["POST", "/twilio/status", "403"],
        ["POST", "/twilio/inbound", "200"],
        ["GET", "/unsubscribe", "200"],
        ["POST", "/unsubscribe", "200"],
        ["POST", "/unsubscribe", "400"],
    ]
    logged = "\n".join(lines)
    for secret in (AUTH_TOKEN, UNSUBSCRIBE_SECRET, token, token[:16], MARIA_SMS, MARIA_EMAIL):
        assert secret not in logged
