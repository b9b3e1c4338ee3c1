"""SMS through Twilio, on the wire: the local TwilioServer receives what the channel sends, and its signed status
callbacks reach a real local receiver that hands them to the channel.

The sample audience has five recipients who may be texted (+13055550164 New York, +13125550117 and +17735550123
Chicago, +14155550176 Los Angeles, +16305550142 with no zone: Chicago by its area code) and four who may not.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from pydantic import SecretStr

from carecast.channel import Outbox, PublishContext
from carecast.cli import main
from carecast.errors import ChannelError, CredentialError, NotAtProvider, PublishError
from carecast.inflight import LOST
from carecast.ledger import NOT_TRIED, Ledger
from carecast.model import Draft, content_hash
from carecast.pipeline import make_channel, sync_audience
from carecast.practice import load_settings
from carecast_channels.sms import SmsChannel, twilio_signature
from tests.channels.conftest import naming_any, our_log_lines, sample_addresses
from tests.conftest import write_config
from tests.factories import make_observance
from tests.providers import DROP, RecordedRequest, Reply
from tests.providers.twilio import TwilioCredentials, TwilioServer
from tests.providers.twilio import twilio_signature as reference_signature

TOKEN = "tok-7f3a9c1e5b2d4f6a8c0e2b4d6f8a0c1e"
CREDENTIALS = TwilioCredentials(auth_token=TOKEN)
MESSAGES = f"/2010-04-01/Accounts/{CREDENTIALS.account_sid}/Messages.json"
CONSENTING = {"+13055550164", "+13125550117", "+14155550176", "+16305550142", "+17735550123"}
#: Monday 2026-02-02 17:00 UTC: 11:00 in Chicago, 12:00 in New York, 09:00 in Los Angeles: everyone's window is open.
OPEN = datetime(2026, 2, 2, 17, 0, tzinfo=UTC)
AUDIENCE = sample_addresses("sms")


class CallbackReceiver:
    """A local HTTP endpoint for Twilio's status callbacks: each POST goes to the channel, 403 when refused."""

    def __init__(self) -> None:
        self.channel: SmsChannel | None = None
        self.ledger: Ledger | None = None
        self.refused: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                params = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                url = f"{receiver.base}{self.path}"
                assert receiver.channel is not None and receiver.ledger is not None
                try:
                    receiver.channel.apply_status_callback(
                        receiver.ledger, url, params, self.headers.get("X-Twilio-Signature", "")
                    )
                except ChannelError as exc:
                    receiver.refused.append(str(exc))
                    self.send_response(403)
                else:
                    self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.base}/twilio/status"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    callbacks = CallbackReceiver()
    yield callbacks
    callbacks.stop()


class Setup:
    """A practice whose SMS channel has Twilio credentials pointing at ``server``, its audience in the ledger."""

    def __init__(self, tmp_path: Path, server: TwilioServer, receiver: CallbackReceiver, **sms: Any) -> None:
        credentials = {"account_sid": CREDENTIALS.account_sid, "auth_token": {"env": "TWILIO_AUTH_TOKEN"}}
        changes = {"credentials": {**credentials, "api_base": server.url}, "status_callback": receiver.url, **sms}
        self.settings = load_settings(write_config(tmp_path, {"channels": {"sms": changes}}))
        channel = make_channel(self.settings, "sms")
        assert isinstance(channel, SmsChannel)
        self.channel = channel
        self.ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        self.outbox = Outbox(tmp_path / "outbox")
        sync_audience(self.settings, self.ledger)
        receiver.channel, receiver.ledger = self.channel, self.ledger

    def draft(self, summary: str = "Happy Patient Recognition Week! Thank you for trusting us.") -> Draft:
        item = make_observance(f"observance-{content_hash(summary)[:8]}", summary=summary)
        self.ledger.upsert_items([item])
        return self.channel.render([item])

    def claim(self, draft: Draft, now: datetime = OPEN, *, delivery_chunk: int = 1) -> PublishContext:
        """Claim ``draft`` as the pipeline does: the first time, or again after a transient failure; its recipients
        are claimed ``delivery_chunk`` at a time (``ledger.delivery_chunk``)."""
        draft_id = self.ledger.save_draft(draft, self.channel.config.account, "approved")
        return PublishContext(
            self.ledger.claim(draft_id), self.outbox, self.ledger, now=now, delivery_chunk=delivery_chunk
        )

    def retry(self, context: PublishContext, error: PublishError, now: datetime) -> PublishContext:
        """What the next run does with a transient failure: record it, claim the publication again (same id)."""
        assert error.transient
        self.ledger.record_failed(context.publication_id, error.reason, transient=True)
        [publication] = [p for p in self.ledger.publications() if p.id == context.publication_id]
        stored = next(d for d in self.ledger.drafts("sms") if d.draft.item_ids == tuple(publication.item_ids))
        return PublishContext(self.ledger.claim(stored.id), self.outbox, self.ledger, now=now)


def sent_forms(server: TwilioServer) -> list[dict[str, str]]:
    return [request.body for request in server.requests_to("POST", MESSAGES)]


@pytest.fixture(autouse=True)
def auth_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)


@pytest.fixture(autouse=True)
def no_number_in_our_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a scenario does, no log line of ours names a recipient's number."""
    caplog.set_level(logging.DEBUG)
    yield
    assert naming_any(our_log_lines(caplog), AUDIENCE) == []


def test_every_consenting_recipient_gets_exactly_one_text(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver)
        draft = setup.draft()
        context = setup.claim(draft)
        receipt = setup.channel.publish(draft, context)
        forms = sent_forms(server)
        assert {form["To"] for form in forms} == CONSENTING and len(forms) == len(CONSENTING)
        for form in forms:
            assert form == {
                "To": form["To"],
                "From": "+13125550100",
                "Body": draft.text,
                "StatusCallback": receiver.url,
            }
        basic = base64.b64encode(f"{CREDENTIALS.account_sid}:{TOKEN}".encode()).decode()
        assert {r.headers["Authorization"] for r in server.requests_to("POST", MESSAGES)} == {f"Basic {basic}"}
        assert sorted(receipt.provider_ids) == sorted(message["sid"] for message in server.messages)
        assert receipt.location == server.url + MESSAGES
        assert receipt.notes == (
            "1 skipped: no consent on file",
            "2 skipped: status is opted_out",
            "1 skipped: status is unsubscribed",
        )
        # queued, sent and delivered for each: the deliveries end "delivered".
        server.wait_for_callbacks(3 * len(CONSENTING))
        server.stop()  # joins the callback threads
        assert {d.state for d in setup.ledger.deliveries(context.publication_id).values()} == {"delivered"}
        assert receiver.refused == []

        again = setup.channel.publish(draft, context)
        assert len(sent_forms(server)) == len(CONSENTING)
        assert sorted(again.provider_ids) == sorted(receipt.provider_ids)


def test_opted_out_at_twilio_is_suppressed_and_never_retried(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS, opted_out={"+13125550117"}) as server:
        setup = Setup(tmp_path, server, receiver)
        draft = setup.draft()
        context = setup.claim(draft)
        receipt = setup.channel.publish(draft, context)
        assert len(receipt.provider_ids) == len(CONSENTING) - 1
        delivery = setup.ledger.deliveries(context.publication_id)["+13125550117"]
        assert (delivery.state, delivery.transient, delivery.provider_id) == ("failed", False, None)
        assert delivery.error == "Twilio 21610 (HTTP 400): the recipient opted out (replied STOP)"
        assert {s.address: s.status for s in setup.ledger.subscribers("sms")}["+13125550117"] == "opted_out"

        setup.channel.publish(draft, context)
        other = setup.draft("National Doctors' Day: thank you to our team.")
        setup.channel.publish(other, setup.claim(other))
        tried = [form["To"] for form in sent_forms(server)]
        assert tried.count("+13125550117") == 1
        assert len(tried) == 2 * len(CONSENTING) - 1


def test_invalid_number_is_suppressed(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver)
        draft = setup.draft()
        # The first recipient, in address order, is +13055550164.
        server.force(Reply(400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}))
        receipt = setup.channel.publish(draft, context := setup.claim(draft))
        assert len(receipt.provider_ids) == len(CONSENTING) - 1
        assert setup.ledger.deliveries(context.publication_id)["+13055550164"].state == "failed"
        assert {s.address: s.status for s in setup.ledger.subscribers("sms")}["+13055550164"] == "invalid"


def test_filtered_text_is_never_sent_again(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS, filtered_phrases=["Recognition"]) as server:
        setup = Setup(tmp_path, server, receiver)
        draft = setup.draft()
        context = setup.claim(draft)
        receipt = setup.channel.publish(draft, context)
        server.wait_for_callbacks(3 * len(CONSENTING))
        # Twilio repeats itself and mixes the order: the first final status stands.
        sid = receipt.provider_ids[0]
        server.replay_callbacks(sid, ["undelivered", "sent", "queued", "undelivered"])
        deliveries = setup.ledger.deliveries(context.publication_id).values()
        assert {(d.state, d.transient) for d in deliveries} == {("failed", False)}
        assert all(d.error and d.error.startswith("Twilio 30007: carrier filtered") for d in deliveries)
        again = setup.channel.publish(draft, context)
        assert len(sent_forms(server)) == len(CONSENTING)
        assert again.notes[-1] == (
            f"{len(CONSENTING)} failed: Twilio 30007: carrier filtered; this text is never sent to them again"
        )


def test_forged_status_callback_is_refused(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver)
        draft = setup.draft()
        context = setup.claim(draft)
        setup.channel.publish(draft, context)
        sid = next(iter(setup.ledger.deliveries(context.publication_id).values())).provider_id
        assert sid is not None
        params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30007"}
        forged = reference_signature("not-the-token", receiver.url, params)
        with pytest.raises(ChannelError, match="X-Twilio-Signature"):
            setup.channel.apply_status_callback(setup.ledger, receiver.url, params, forged)
        # Our signature is Twilio's algorithm, checked against the fake's.
        assert twilio_signature(SecretStr(TOKEN), receiver.url, params) == reference_signature(
            TOKEN, receiver.url, params
        )
        assert setup.ledger.delivery_by_provider_id(sid) is not None
        unknown = {**params, "MessageSid": "SM" + "0" * 32}
        signed = reference_signature(TOKEN, receiver.url, unknown)
        assert setup.channel.apply_status_callback(setup.ledger, receiver.url, unknown, signed, wait=0) is None


class ThrottlesAfter(TwilioServer):
    """Twilio that accepts ``accepted`` messages, then answers every creation with 429 and Retry-After: 30."""

    def __init__(self, accepted: int) -> None:
        super().__init__(credentials=CREDENTIALS)
        self.accepted = accepted
        self.throttling = True

    def handle(self, request: RecordedRequest) -> Reply:
        if self.throttling and request.method == "POST" and len(self.messages) >= self.accepted:
            return Reply(429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "30"})
        return super().handle(request)


def test_throttled_batch_resumes_with_only_the_rest(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with ThrottlesAfter(accepted=2) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None, retry_budget=5)
        draft = setup.draft()
        context = setup.claim(draft, delivery_chunk=500)
        with pytest.raises(PublishError) as caught:
            setup.channel.publish(draft, context)
        # Retry-After (30s) is beyond the budget: nothing more is tried in this run.
        assert (caught.value.transient, caught.value.retry_after) == (True, 30.0)
        assert "Twilio 20429" in caught.value.reason
        records = setup.ledger.deliveries(context.publication_id).values()
        assert sorted(d.state for d in records) == ["failed", "failed", "failed", "sent", "sent"]
        # Claimed with their chunk but never tried: left, retryable, for the next run.
        assert sum(d.error == NOT_TRIED and d.transient for d in records) == 2
        assert len(sent_forms(server)) == 3

        server.throttling = False
        receipt = setup.channel.publish(draft, setup.retry(context, caught.value, OPEN))
        tried = [form["To"] for form in sent_forms(server)]
        assert len(tried) == 3 + 3  # the throttled one again, and the two never tried
        assert {message["to"] for message in server.messages} == CONSENTING
        assert len(server.messages) == len(CONSENTING) == len(receipt.provider_ids)


def test_throttle_and_5xx_within_the_budget_are_retried(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None)
        server.throttle(times=1, retry_after=0)
        server.force(Reply(503, {"code": 20500, "message": "Internal Server Error", "status": 503}))
        draft = setup.draft()
        receipt = setup.channel.publish(draft, setup.claim(draft))
        assert len(sent_forms(server)) == len(CONSENTING) + 2
        assert len(receipt.provider_ids) == len(server.messages) == len(CONSENTING)


def test_unreachable_twilio_leaves_everyone_for_the_next_run(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver, retry_budget=0)
    draft = setup.draft()  # the server is gone: connections are refused
    context = setup.claim(draft, delivery_chunk=500)
    with pytest.raises(PublishError, match="did not answer") as caught:
        setup.channel.publish(draft, context)
    assert caught.value.transient
    # The first failed; the rest of its chunk was claimed, never tried: every one is retryable.
    deliveries = setup.ledger.deliveries(context.publication_id).values()
    assert {(delivery.state, delivery.transient) for delivery in deliveries} == {("failed", True)}
    assert sum(delivery.error == NOT_TRIED for delivery in deliveries) == len(CONSENTING) - 1


def test_recipients_outside_their_window_wait_for_it(tmp_path: Path, receiver: CallbackReceiver) -> None:
    # 14:30 UTC: 08:30 in Chicago, 09:30 in New York, 06:30 in Los Angeles (opens 08:00 PST = 16:00 UTC).
    early = datetime(2026, 2, 2, 14, 30, tzinfo=UTC)
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None)
        draft = setup.draft()
        context = setup.claim(draft, now=early)
        with pytest.raises(PublishError, match="quiet hours") as caught:
            setup.channel.publish(draft, context)
        assert (caught.value.transient, caught.value.retry_after) == (True, 90 * 60)
        assert {form["To"] for form in sent_forms(server)} == CONSENTING - {"+14155550176"}
        waiting = setup.ledger.deliveries(context.publication_id)["+14155550176"]
        assert (waiting.state, waiting.not_before) == ("deferred", datetime(2026, 2, 2, 16, 0, tzinfo=UTC))

        # A run before the opening defers again, sending nothing.
        context = setup.retry(context, caught.value, datetime(2026, 2, 2, 15, 0, tzinfo=UTC))
        with pytest.raises(PublishError) as caught:
            setup.channel.publish(draft, context)
        assert caught.value.retry_after == 60 * 60
        assert len(sent_forms(server)) == len(CONSENTING) - 1

        receipt = setup.channel.publish(
            draft, setup.retry(context, caught.value, datetime(2026, 2, 2, 16, 0, tzinfo=UTC))
        )
        tried = [form["To"] for form in sent_forms(server)]
        assert sorted(tried) == sorted(CONSENTING)
        assert len(receipt.provider_ids) == len(CONSENTING)


def test_an_unset_auth_token_is_raised_as_is_before_anything_is_sent(
    tmp_path: Path, receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver)
        draft = setup.draft()
        context = setup.claim(draft)
        monkeypatch.delenv("TWILIO_AUTH_TOKEN")
        # The pipeline decides what a missing credential means (nothing was sent), the same for every channel.
        with pytest.raises(CredentialError, match="environment variable TWILIO_AUTH_TOKEN"):
            setup.channel.publish(draft, context)
        assert server.requests == []
        assert setup.ledger.deliveries(context.publication_id) == {}


def test_verify_fetches_the_account_and_sends_nothing(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver)
        assert setup.channel.verify() == (
            f"Twilio account {CREDENTIALS.account_sid} (CareCast test account) is active; nothing sent"
        )
        assert [(r.method, r.path) for r in server.requests] == [
            ("GET", f"/2010-04-01/Accounts/{CREDENTIALS.account_sid}.json")
        ]


def test_auth_token_appears_nowhere(
    tmp_path: Path, receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    with TwilioServer(credentials=CREDENTIALS, opted_out={"+13125550117"}) as server:
        setup = Setup(tmp_path, server, receiver, retry_budget=2)
        server.throttle(times=1, retry_after=1)
        draft = setup.draft()
        context = setup.claim(draft)
        receipt = setup.channel.publish(draft, context)
        server.wait_for_callbacks(3 * (len(CONSENTING) - 1))
        other = setup.draft("National Doctors' Day: thank you to our team.")
        server.throttle(times=1, retry_after=30)
        with pytest.raises(PublishError) as throttled:
            setup.channel.publish(other, throttled_context := setup.claim(other))
        errors.append(throttled.value)
        # A wrong token: Twilio refuses it; the errors name where the token comes from, never what it is.
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN[::-1])
        with pytest.raises(CredentialError) as refused:
            setup.channel.verify()
        assert "TWILIO_AUTH_TOKEN" in str(refused.value)
        errors.append(refused.value)
        with pytest.raises(CredentialError, match=r"channels\.sms\.credentials.*20003.*fix it") as rejected:
            setup.channel.publish(other, retried := setup.retry(throttled_context, throttled.value, OPEN))
        errors.append(rejected.value)
        # Retried once the staff fix the token: everyone reached once.
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
        fixed = PublishError("sms", str(rejected.value), transient=True)  # as the pipeline records a credential
        setup.channel.publish(other, setup.retry(retried, fixed, OPEN))
        texted = Counter(message["to"] for message in server.messages if message["body"] == other.text)
        assert len(texted) == len(CONSENTING) - 1 and set(texted.values()) == {1}
        monkeypatch.delenv("TWILIO_AUTH_TOKEN")
        with pytest.raises(CredentialError) as unset:
            setup.channel.verify()
        errors.append(unset.value)
    texts = [caplog.text, repr(receipt), *(f"{e!s} {e!r} {e.__cause__!r}" for e in errors)]
    assert not [text for text in texts if TOKEN in text or TOKEN[::-1] in text]
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "ledger.db" for path in files)
    assert not [
        path for path in files if TOKEN.encode() in path.read_bytes() or TOKEN[::-1].encode() in path.read_bytes()
    ]


class AnswersLate(TwilioServer):
    """Twilio that accepts the first message but answers it only after ``delay`` seconds, past the client's timeout."""

    def __init__(self, delay: float) -> None:
        super().__init__(credentials=CREDENTIALS)
        self.delay = delay
        self.late: threading.Thread | None = None

    def handle(self, request: RecordedRequest) -> Reply:
        reply = super().handle(request)
        if request.method == "POST" and len(self.messages) == 1 and reply.status == 201:
            self.late = threading.current_thread()
            time.sleep(self.delay)
        return reply


def test_a_lost_answer_is_looked_up_at_twilio_and_never_sent_again(
    tmp_path: Path, receiver: CallbackReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    with AnswersLate(delay=1.0) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None, timeout=0.3)
        draft = setup.draft()
        context = setup.claim(draft)
        with pytest.raises(PublishError) as caught:
            setup.channel.publish(draft, context)
        # Twilio accepted the first text; only its answer was lost: the batch went on, the publication is retried.
        assert caught.value.transient and "answer to 1 text(s) was lost" in caught.value.reason
        first = server.messages[0]
        assert len(server.messages) == len(CONSENTING)
        lost = setup.ledger.deliveries(context.publication_id)[first["to"]]
        assert (lost.state, lost.transient, lost.error) == ("failed", True, LOST)
        assert not [record for record in caplog.records if "trying again" in record.getMessage()]

        receipt = setup.channel.publish(draft, setup.retry(context, caught.value, OPEN))
        # The next run asked Twilio's message list about that recipient, found the text and sent nothing again.
        tried = Counter(form["To"] for form in sent_forms(server))
        assert sorted(tried) == sorted(CONSENTING) and set(tried.values()) == {1}
        assert len(server.messages) == len(CONSENTING)
        assert [r.query["To"] for r in server.requests_to("GET", MESSAGES)] == [first["to"]]
        found = setup.ledger.deliveries(context.publication_id)[first["to"]]
        assert (found.state, found.provider_id) == ("sent", first["sid"])
        assert first["sid"] in receipt.provider_ids
        assert server.late is not None
        server.late.join()  # its answer meets a closed connection, as it would at Twilio


def test_a_text_lost_before_twilio_had_it_is_sent_after_the_lookup(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None, retry_budget=0)
        draft = setup.draft()
        context = setup.claim(draft)
        server.force(DROP)  # the connection drops before Twilio acts on the first text
        with pytest.raises(PublishError) as caught:
            setup.channel.publish(draft, context)
        setup.channel.publish(draft, setup.retry(context, caught.value, OPEN))

        texted = Counter(message["to"] for message in server.messages)
        assert sorted(texted) == sorted(CONSENTING) and set(texted.values()) == {1}


def test_no_number_in_errors_or_notes(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS, opted_out={"+13125550117"}) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None, retry_budget=0)
        draft = setup.draft()
        context = setup.claim(draft)
        # Twilio's own messages name the number they are about; ours never repeat them. In address order, the
        # first two recipients are +13055550164 and +13125550117.
        server.force(
            Reply(400, {"code": 21211, "message": "Invalid 'To' Phone Number: +13055550164", "status": 400}),
            Reply(503, {"code": 20500, "message": "Internal error sending to +13125550117", "status": 503}),
        )
        with pytest.raises(PublishError) as unavailable:
            setup.channel.publish(draft, context)
        receipt = setup.channel.publish(draft, setup.retry(context, unavailable.value, OPEN))
        other = setup.draft("National Doctors' Day: thank you to our team.")
        server.force(Reply(400, {"code": 21999, "message": "Cannot route to +14155550176", "status": 400}))
        with pytest.raises(PublishError) as refused:
            setup.channel.publish(other, other_context := setup.claim(other))
    deliveries = [d.error for c in (context, other_context) for d in setup.ledger.deliveries(c.publication_id).values()]
    texts = [unavailable.value.reason, refused.value.reason, *receipt.notes, *deliveries]
    assert "1 failed: Twilio 21211 (HTTP 400): not a valid mobile number" in receipt.notes
    assert unavailable.value.reason.startswith("Twilio 20500 (HTTP 503): Twilio failed")
    assert refused.value.reason == "Twilio 21999 (HTTP 400)"
    assert naming_any(texts, AUDIENCE) == []


def test_a_paced_sender_is_never_throttled(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS, messages_per_second=4) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None, rate="4/s")
        draft = setup.draft()
        receipt = setup.channel.publish(draft, replace(setup.claim(draft), pace=setup.channel.paced()))
        assert len(receipt.provider_ids) == len(CONSENTING)
        assert server.throttled == 0


def test_an_unpaced_sender_beyond_the_limit_is_throttled(tmp_path: Path, receiver: CallbackReceiver) -> None:
    with TwilioServer(credentials=CREDENTIALS, messages_per_second=2) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None)
        draft = setup.draft()
        receipt = setup.channel.publish(draft, setup.claim(draft))  # 429s are retried after Retry-After
        assert len(receipt.provider_ids) == len(CONSENTING)
        assert server.throttled > 0


def test_four_in_flight_text_each_recipient_exactly_once(tmp_path: Path, receiver: CallbackReceiver) -> None:
    arrived: list[int] = []  # texts that reached Twilio while the first one's answer was held back
    counters: list[threading.Thread] = []

    calls = itertools.count()

    def count_while_held() -> None:
        # Polled, not a timer: a loaded machine fires timers late, and libfaketime (tests/test_clock.py) not at all.
        deadline = time.monotonic() + 2.0
        while len(server.requests_to("POST", MESSAGES)) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # a fifth text that did not wait for room would have arrived by now
        arrived.append(len(server.requests_to("POST", MESSAGES)))

    def probe(request: RecordedRequest) -> bool:
        if next(calls) > 0:  # asked of the texts handled at the same time as the first, before it was held back
            return False
        count = threading.Thread(target=count_while_held)
        counters.append(count)
        count.start()
        return True

    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None, concurrency=4)
        server.answer_late(probe, 3.0)
        draft = setup.draft()
        context = setup.claim(draft)  # delivery_chunk 1: claimed four at a time, as many as are in flight
        receipt = setup.channel.publish(draft, context)
        for count in counters:
            count.join()
        assert sorted(form["To"] for form in sent_forms(server)) == sorted(CONSENTING)
        assert arrived == [4]  # four in flight, not one after the other; the fifth waited for room
        assert sorted(receipt.provider_ids) == sorted(message["sid"] for message in server.messages)
        records = setup.ledger.deliveries(context.publication_id)
        assert {address: record.state for address, record in records.items()} == dict.fromkeys(CONSENTING, "sent")
        again = PublishContext(context.publication_id, setup.outbox, setup.ledger, now=OPEN)
        setup.channel.publish(draft, again)  # a retry of the same publication finds nobody left to text
        assert len(sent_forms(server)) == len(CONSENTING)


def test_a_stop_with_texts_in_flight_records_them_and_leaves_the_rest(
    tmp_path: Path, receiver: CallbackReceiver
) -> None:
    stopping = threading.Event()

    def stop_at_the_first(request: RecordedRequest) -> bool:
        stopping.set()  # a SIGTERM while the first texts are in flight
        return True

    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None, concurrency=4)
        server.answer_late(stop_at_the_first, 0.5)
        draft = setup.draft()
        context = replace(setup.claim(draft, delivery_chunk=2), stopping=stopping)
        with pytest.raises(PublishError, match="stopped by a shutdown") as stopped:
            setup.channel.publish(draft, context)
        assert stopped.value.transient
        first = {form["To"] for form in sent_forms(server)}
        records = setup.ledger.deliveries(context.publication_id)
        # What was in flight finished and was recorded; nothing is left claimed or unknown.
        assert {a: r.state for a, r in records.items() if r.state == "sent"} == dict.fromkeys(first, "sent")
        assert {r.state for r in records.values()} <= {"sent", "failed"}
        assert all(r.error == NOT_TRIED and r.transient for r in records.values() if r.state == "failed")
        assert 1 <= len(first) < len(CONSENTING)
        setup.channel.publish(draft, setup.retry(context, stopped.value, OPEN))
        forms = sent_forms(server)
        assert sorted(form["To"] for form in forms) == sorted(CONSENTING)  # the rest, each once


def test_a_stop_counts_every_text_that_went_out(tmp_path: Path, receiver: CallbackReceiver) -> None:
    """Asked to stop while Twilio answers the second text (one at a time, a chunk of one): the stop says two went
    out (the second recorded before it is said, not one short), and the retry texts the rest, each once."""
    stopping = threading.Event()
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None)
        server.watch(lambda _: stopping.set() if len(sent_forms(server)) == 2 else None)
        draft = setup.draft()
        context = replace(setup.claim(draft), stopping=stopping)
        with pytest.raises(PublishError, match="stopped by a shutdown after 2 sent") as stopped:
            setup.channel.publish(draft, context)
        records = setup.ledger.deliveries(context.publication_id)
        assert (
            [r.state for r in records.values() if r.state == "sent"]
            == ["sent"] * 2
            == ["sent"] * len(sent_forms(server))
        )
        setup.channel.publish(draft, setup.retry(context, stopped.value, OPEN))
        assert sorted(form["To"] for form in sent_forms(server)) == sorted(CONSENTING)  # the rest, each once


def test_audit_prints_one_numbers_history_through_opt_in_texts_and_stop(
    tmp_path: Path, receiver: CallbackReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    from carecast.cli import main
    from carecast.compliance import handle_inbound

    maria = "+13125550117"
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver)
        first = setup.draft()
        setup.channel.publish(first, setup.claim(first))
        server.wait_for_callbacks(3 * len(CONSENTING))
        second = setup.draft("National Doctors' Day: thank you to our team.")
        setup.channel.publish(second, setup.claim(second))
        server.wait_for_callbacks(6 * len(CONSENTING))
        assert handle_inbound(setup.ledger, setup.settings.practice, maria, "STOP")
        third = setup.draft("World Physical Therapy Day is September 8.")
        setup.channel.publish(third, setup.claim(third))
        server.wait_for_callbacks(9 * len(CONSENTING) - 3)
        server.stop()  # joins the callback threads
        setup.ledger.close()

    # The CLI opens the ledger the config names: the one this test's Setup used.
    config = str(setup.settings.file)
    data = yaml.safe_load(setup.settings.file.read_text())
    setup.settings.file.write_text(yaml.safe_dump({**data, "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"}}))
    assert main(["audit", "--recipient", maria, "--config", config, "--format", "json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert {event["recipient"] for event in events} == {maria}
    assert [(event["event"], event["status"]) for event in events] == [
        ("opt-in", "consent"),
        ("message", "delivered"),
        ("message", "delivered"),
        ("opt-out", "opted_out"),
        ("skipped", "not sent"),
    ]
    opt_in, text, *_, skipped = events
    assert opt_in["when"] == "2025-01-14T15:15:00+00:00" and opt_in["detail"] == "web form (checkbox not pre-checked)"
    assert text["consent"].startswith("2025-01-14 web form") and "Reply STOP to opt out" in text["consent"]
    assert text["detail"].startswith("provider id SM")
    assert skipped["detail"].startswith("opted_out since") and "opt-out request" in skipped["detail"]

    assert main(["audit", "--recipient", maria, "--config", config]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["when", "channel", "audience", "recipient", "event", "status", "detail", "consent"]
    assert len(table) == 2 + len(events)
    assert main(["audit", "--config", config, "--format", "csv", "--since", "2026-01-01"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "when,channel,audience,recipient,event,status,detail,consent" and len(rows) > len(events)
    # The subscriber file the texts went to; the STOP stops every text, whatever list.
    assert [event["audience"] for event in events] == ["audience/sms.csv"] * 3 + ["all texts", "audience/sms.csv"]


def resolve_in_flow(publication_id: int, address: str, config: str) -> BaseException | str:
    """What the resolve flow (the Prefect form) makes of ``--sent`` for ``address``: its summary, or what it raised."""
    from carecast_flows.resolve import resolve

    state = resolve(publication_id, "sent", recipient=address, practice=config, return_state=True)
    return state.result(raise_on_failure=False)  # type: ignore[no-any-return]


@pytest.mark.parametrize("entry", ["command", "flow"])
def test_resolve_sent_is_refused_for_a_recipient_twilio_has_no_text_to(
    tmp_path: Path,
    receiver: CallbackReceiver,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    entry: str,
) -> None:
    """``carecast resolve`` and the resolve flow ask Twilio alike (carecast.resolution.settle)."""
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None)
        setup.ledger.close()
        setup.ledger = Ledger(setup.settings.ledger_url())  # the ledger the command opens
        sync_audience(setup.settings, setup.ledger)
        draft = setup.draft()
        context = setup.claim(draft)
        texted, never = sorted(CONSENTING)[:2]
        # A run died with both in flight; Twilio has a text to the first only.
        requests.post(
            server.url + MESSAGES,
            data=setup.channel.form(texted, draft.text),
            auth=(CREDENTIALS.account_sid, TOKEN),
            timeout=5,
        ).raise_for_status()
        for address in (texted, never):
            setup.ledger.claim_delivery(context.publication_id, address)
        setup.ledger.resume_stale("sms", timedelta(0))
        setup.ledger.record_unknown(context.publication_id, "2 recipient(s) unknown")
        config = str(setup.settings.file)

        if entry == "flow":
            request.getfixturevalue("prefect_api")
            refused_in_flow = resolve_in_flow(context.publication_id, never, config)
            accepted_in_flow = resolve_in_flow(context.publication_id, texted, config)
        else:
            command = ["resolve", str(context.publication_id), "--sent", "--config", config]
            refused = main([*command, "--recipient", never])
            accepted = main([*command, "--recipient", texted])

    if entry == "flow":
        assert isinstance(refused_in_flow, NotAtProvider) and refused_in_flow.addresses == [never], refused_in_flow
        assert accepted_in_flow == f"publication {context.publication_id}: 1 settled (sent); unknown"
    else:
        assert refused == 1 and f"no record of it for 1 recipient(s) ({never})" in capsys.readouterr().err
        assert accepted == 0
    states = {a: d.state for a, d in setup.ledger.deliveries(context.publication_id).items()}
    assert (states[texted], states[never]) == ("sent", "unknown")


def test_resolve_resend_of_a_chunk_texts_only_those_twilio_has_no_text_to(
    tmp_path: Path, receiver: CallbackReceiver
) -> None:
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver, status_callback=None)
        draft = setup.draft()
        context = setup.claim(draft)
        texted = sorted(CONSENTING)[:2]
        # A run died with a chunk of every recipient claimed; Twilio had texted two of them.
        for address in texted:
            form = setup.channel.form(address, draft.text)
            requests.post(server.url + MESSAGES, data=form, auth=(CREDENTIALS.account_sid, TOKEN), timeout=5)
        setup.ledger.claim_deliveries(context.publication_id, sorted(CONSENTING))
        setup.ledger.resume_stale("sms", timedelta(0))
        setup.ledger.record_unknown(context.publication_id, "5 recipient(s) unknown")
        setup.ledger.resolve(context.publication_id, "resend")  # the whole chunk

        [publication] = [p for p in setup.ledger.publications() if p.id == context.publication_id]
        setup.channel.publish(
            draft,
            PublishContext(setup.ledger.claim(_draft_id(setup, publication)), setup.outbox, setup.ledger, now=OPEN),
        )

    texts = Counter(message["to"] for message in server.messages)
    assert sorted(texts) == sorted(CONSENTING) and set(texts.values()) == {1}


def _draft_id(setup: Setup, publication: Any) -> int:
    return next(d.id for d in setup.ledger.drafts("sms") if d.draft.item_ids == tuple(publication.item_ids))
