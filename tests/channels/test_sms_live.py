"""SMS through Twilio, on the wire: the local TwilioServer receives what the channel sends, and its signed status
callbacks reach a real local receiver that hands them to the channel.

The sample audience has five recipients who may be texted (+13055550164 New York, +13125550117 and +17735550123
Chicago, +14155550176 Los Angeles, +16305550142 with no zone: Chicago by its area code) and four who may not.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from carecast.errors import ChannelError, CredentialError, PublishError
from carecast.inflight import LOST
from carecast.ledger import NOT_TRIED
from carecast_channels.sms import twilio_signature
from tests.channels.conftest import naming_any
from tests.channels.sms_wire import (  # noqa: F401
    AUDIENCE,
    CONSENTING,
    CREDENTIALS,
    MESSAGES,
    OPEN,
    TOKEN,
    CallbackReceiver,
    Setup,
    auth_token_env,
    no_number_in_our_logs,
    receiver_fixture,
    sent_forms,
)
from tests.providers import DROP, RecordedRequest, Reply
from tests.providers.twilio import TwilioServer
from tests.providers.twilio import twilio_signature as reference_signature


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


def test_the_environment_proxy_is_read_as_requests_reads_it(
    tmp_path: Path, receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session reads the environment's proxy once, not at every text, and still as requests does: a proxy set
    is used (nothing listens on port 1 here), a host in ``no_proxy`` is reached directly."""
    with TwilioServer(credentials=CREDENTIALS) as server:
        setup = Setup(tmp_path, server, receiver)
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        with pytest.raises(PublishError, match="ProxyError"):
            setup.channel.verify()
        assert server.requests == []
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        assert setup.channel.verify().endswith("is active; nothing sent")
        draft = setup.draft()
        setup.channel.publish(draft, setup.claim(draft))
        assert {form["To"] for form in sent_forms(server)} == CONSENTING


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
