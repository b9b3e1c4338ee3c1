"""SMS through Twilio, on the wire, in batches: paced and unpaced senders, texts in flight at once, a stop while
they are, a number's audit history, and resolving texts in doubt (the shared set-up: tests/channels/sms_wire.py).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from carecast.channel import PublishContext
from carecast.cli import main
from carecast.errors import NotAtProvider, PublishError
from carecast.ledger import NOT_TRIED, Ledger
from carecast.pipeline import sync_audience
from tests.channels.sms_wire import (  # noqa: F401
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
from tests.providers import RecordedRequest
from tests.providers.twilio import TwilioServer


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
