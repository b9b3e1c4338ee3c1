"""The ledger on real SQLite and real PostgreSQL: items, drafts, and the claim that makes sending twice impossible."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carecast.errors import AlreadyClaimed, LedgerError
from carecast.ledger import IN_FLIGHT, Ledger
from carecast.model import ContentItem, Draft, Receipt, content_hash
from tests.factories import make_item


def item(number: int, body: str = "body") -> ContentItem:
    """Blog post ``number``, published on that day of November 2026; an edit changes ``body``."""
    return make_item(
        f"rss:blog:{number}",
        summary=body,
        title=f"Post {number}",
        url=f"https://www.oakviewpt.com/{number}",
        published=datetime(2026, 11, number, 12, tzinfo=UTC),
        content_hash=content_hash(str(number), body),
    )


def draft(*numbers: int, channel: str = "x") -> Draft:
    return Draft(channel=channel, item_ids=tuple(f"rss:blog:{n}" for n in numbers), parts=("hello",))


@pytest.fixture
def ledger(ledger_url: str):
    opened = Ledger(ledger_url)
    opened.upsert_items([item(1), item(2), item(3)])
    yield opened
    opened.close()


def test_upsert_tells_new_edited_and_unchanged(ledger: Ledger) -> None:
    report = ledger.upsert_items([item(1), item(2, "edited body"), item(4)])
    assert report.new == ["rss:blog:4"]
    assert report.edited == ["rss:blog:2"]
    assert report.unchanged == 1
    assert ledger.items(["rss:blog:2"])[0].summary_text == "edited body"
    assert ledger.items(["rss:blog:2"])[0].published.tzinfo is not None


def test_a_claimed_item_cannot_be_claimed_again_on_the_same_channel_and_account(ledger: Ledger) -> None:
    first = ledger.save_draft(draft(1), "@oak", "approved")
    ledger.claim(first)
    # A digest or another draft holding the same item is refused by the database itself.
    other = ledger.save_draft(draft(1, 2), "@oak", "approved")
    with pytest.raises(AlreadyClaimed) as raised:
        ledger.claim(other)
    assert raised.value.item_ids == ["rss:blog:1", "rss:blog:2"]
    # The same item on another account or channel is a different publication.
    ledger.claim(ledger.save_draft(draft(1), "@other", "approved"))
    ledger.claim(ledger.save_draft(draft(1, channel="sms"), "@oak", "approved"))


def test_published_items_are_no_longer_candidates_even_after_an_edit(ledger: Ledger) -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    publication = ledger.claim(ledger.save_draft(draft(1), "@oak", "approved"))
    ledger.record_sent(publication, Receipt("outbox/x/1.json", datetime.now(UTC)))
    ledger.upsert_items([item(1, "a later edit")])
    ids = [candidate.id for candidate in ledger.unpublished("x", "@oak", None, since)]
    assert ids == ["rss:blog:3", "rss:blog:2"]
    assert [c.id for c in ledger.unpublished("x", "@oak", ["other"], since)] == []


def test_two_workers_racing_for_one_draft_send_it_once(ledger: Ledger) -> None:
    draft_id = ledger.save_draft(draft(2), "@oak", "approved")
    wins, losses = [], []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        try:
            wins.append(ledger.claim(draft_id))
        except (AlreadyClaimed, LedgerError):
            losses.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    assert len(losses) == 3


def test_only_a_transient_failure_is_claimed_again(ledger: Ledger) -> None:
    transient = ledger.save_draft(draft(1), "@oak", "approved")
    publication = ledger.claim(transient)
    ledger.record_failed(publication, "503 from provider", transient=True)
    assert [d.id for d in ledger.due("x")] == [transient]
    assert ledger.claim(transient) == publication
    ledger.record_failed(publication, "403 duplicate", transient=False)
    assert ledger.due("x") == []
    with pytest.raises(AlreadyClaimed):
        ledger.claim(transient)


def test_outcome_is_recorded_once(ledger: Ledger) -> None:
    publication = ledger.claim(ledger.save_draft(draft(3), "@oak", "approved"))
    ledger.record_sent(publication, Receipt("here", datetime.now(UTC), ("123",)))
    with pytest.raises(LedgerError):
        ledger.record_failed(publication, "late failure", transient=True)
    [record] = ledger.publications()
    assert record.to_json()["receipt"] == {"location": "here", "provider_ids": ["123"]}
    assert record.item_ids == ["rss:blog:3"]


def test_a_claim_left_by_a_dead_process_is_resumed_once_with_its_recipient_in_flight_unknown(ledger: Ledger) -> None:
    draft_id = ledger.save_draft(draft(1), "@oak", "approved")
    publication = ledger.claim(draft_id)
    ledger.claim_delivery(publication, "+13125550117")
    ledger.finish_delivery(publication, "+13125550117", "sent", provider_id="SM1")
    ledger.claim_delivery(publication, "+13055550164")  # in flight when the process died
    assert ledger.resume_stale("x", timedelta(hours=1)) == []
    assert ledger.resume_stale("x", timedelta(seconds=-1)) == [publication]
    deliveries = ledger.deliveries(publication)
    assert deliveries["+13125550117"].state == "sent"
    assert (deliveries["+13055550164"].state, deliveries["+13055550164"].error) == ("unknown", IN_FLIGHT)
    assert ledger.resume_stale("x", timedelta(hours=1)) == []  # taken over: fresh again
    with pytest.raises(AlreadyClaimed):
        ledger.claim_delivery(publication, "+13055550164")  # never re-sent on its own
    with pytest.raises(AlreadyClaimed):
        ledger.claim(draft_id)


def test_an_unknown_recipient_is_settled_by_resolve(ledger: Ledger) -> None:
    publication = ledger.claim(ledger.save_draft(draft(1), "@oak", "approved"))
    for address in ("+13125550117", "+13055550164"):
        ledger.claim_delivery(publication, address)
    ledger.resume_stale("x", timedelta(seconds=-1))
    with pytest.raises(LedgerError, match="nothing to resolve: it is claimed"):
        ledger.resolve(publication, "resend")
    ledger.record_unknown(publication, "2 recipients unknown")
    with pytest.raises(LedgerError, match="no unknown recipient"):
        ledger.resolve(publication, "sent", address="+19999999999")
    assert ledger.resolve(publication, "sent", address="+13125550117") == 1
    assert ledger.publications()[0].state == "unknown"  # one is still unknown
    assert ledger.resolve(publication, "resend") == 1
    [record] = ledger.publications()
    assert (record.state, record.transient) == ("failed", True)  # the next run finishes it
    assert [stored.id for stored in ledger.due("x", retries_only=True)] == [ledger.publication_draft(publication).id]
    ledger.claim(ledger.publication_draft(publication).id)
    ledger.claim_delivery(publication, "+13055550164")  # the resent one, once
    with pytest.raises(AlreadyClaimed):
        ledger.claim_delivery(publication, "+13125550117")


def test_a_publication_unknown_as_a_whole_is_settled_by_resolve(ledger: Ledger) -> None:
    publication = ledger.claim(ledger.save_draft(draft(1), "@oak", "approved"))
    ledger.record_unknown(publication, "its run died mid-send")
    assert ledger.resolve(publication, "drop") == 1
    assert (ledger.publications()[0].state, ledger.due("x")) == ("failed", [])


def test_a_retried_write_whose_commit_landed_changes_nothing(ledger: Ledger) -> None:
    publication = ledger.claim(ledger.save_draft(draft(1), "@oak", "approved"))
    ledger.claim_delivery(publication, "+13125550117")
    for _ in range(2):
        ledger.finish_delivery(publication, "+13125550117", "sent", provider_id="SM1")
        ledger.record_sent(publication, Receipt("here", datetime.now(UTC), ("SM1",)))
    with pytest.raises(LedgerError):
        ledger.finish_delivery(publication, "+13125550117", "failed")


def test_a_draft_is_replaced_until_it_is_claimed(ledger: Ledger) -> None:
    first = ledger.save_draft(draft(1), "@oak", "approved")
    edited = Draft(channel="x", item_ids=("rss:blog:1",), parts=("edited",))
    assert ledger.save_draft(edited, "@oak", "approved") == first
    assert ledger.drafts("x")[0].draft.parts == ("edited",)
    ledger.claim(first)
    ledger.save_draft(Draft(channel="x", item_ids=("rss:blog:1",), parts=("too late",)), "@oak", "approved")
    assert ledger.drafts("x")[0].draft.parts == ("edited",)


def test_decided_drafts_keep_their_state(ledger: Ledger) -> None:
    draft_id = ledger.save_draft(draft(2), "@oak", "pending")
    ledger.set_draft_state(draft_id, "rejected", "off brand")
    [stored] = ledger.drafts("x", ["rejected"])
    assert stored.reason == "off brand"
    with pytest.raises(LedgerError):
        ledger.set_draft_state(999, "approved")


def test_naive_datetimes_never_reach_the_ledger(ledger: Ledger) -> None:
    publication = ledger.claim(ledger.save_draft(draft(1), "@oak", "approved"))
    with pytest.raises(LedgerError):
        ledger.record_sent(publication, Receipt("x", datetime(2026, 1, 1)))


def test_an_expired_draft_cannot_be_approved(ledger: Ledger) -> None:
    draft_id = ledger.save_draft(draft(2), "@oak", "pending")
    ledger.set_draft_state(draft_id, "expired", "slot passed")
    with pytest.raises(LedgerError, match="never sent late"):
        ledger.set_draft_state(draft_id, "approved")
    assert ledger.drafts("x")[0].created_at.tzinfo is not None


def test_publications_stream_in_pages_filtered_and_limited(ledger: Ledger) -> None:
    ledger.upsert_items([item(n) for n in range(4, 11)])
    for n in range(1, 11):
        publication = ledger.claim(ledger.save_draft(draft(n, channel="x" if n % 2 else "sms"), "default", "approved"))
        if n != 10:
            ledger.record_sent(publication, Receipt(location=f"sent {n}", sent_at=datetime.now(UTC)))
    everything = [record.id for record in ledger.publications()]
    assert [record.id for record in ledger.stream_publications(page=3)] == everything
    assert [r.item_ids for r in ledger.stream_publications(page=3)] == [r.item_ids for r in ledger.publications()]
    assert [record.id for record in ledger.stream_publications(limit=4, page=3)] == everything[-4:]
    assert {record.channel for record in ledger.stream_publications(channel="sms", page=2)} == {"sms"}
    assert [record.item_ids for record in ledger.stream_publications(state="claimed")] == [["rss:blog:10"]]
    assert list(ledger.stream_publications(since=datetime.now(UTC) + timedelta(hours=1))) == []
    assert list(ledger.stream_publications(channel="mastodon", limit=5)) == []


def test_deliveries_are_claimed_and_recorded_in_chunks(ledger: Ledger) -> None:
    from carecast.ledger import DeliveryOutcome

    publication = ledger.claim(ledger.save_draft(draft(1, channel="sms"), "default", "approved"))
    ledger.claim_delivery(publication, "+13125550101")  # claimed one at a time, e.g. by another worker
    addresses = ["+13125550100", "+13125550101", "+13125550102", "+13125550103"]
    claimed = ledger.claim_deliveries(publication, addresses)
    assert claimed == ["+13125550100", "+13125550102", "+13125550103"]
    later = datetime.now(UTC) + timedelta(hours=2)
    ledger.finish_deliveries(
        publication,
        [
            DeliveryOutcome("+13125550100", "sent", provider_id="SM1"),
            DeliveryOutcome("+13125550102", "failed", error="Twilio 21211", transient=False),
            DeliveryOutcome("+13125550103", "deferred", not_before=later),
        ],
    )
    records = ledger.deliveries(publication)
    assert (records["+13125550100"].state, records["+13125550100"].provider_id) == ("sent", "SM1")
    assert (records["+13125550102"].state, records["+13125550102"].transient) == ("failed", False)
    assert (records["+13125550103"].state, records["+13125550103"].not_before) == ("deferred", later)
    # Only the deferred one can be claimed again; a chunk's outcome for an unclaimed delivery records nothing.
    assert ledger.claim_deliveries(publication, addresses) == ["+13125550103"]
    assert ledger.deliveries(publication)["+13125550103"].attempts == 2
    with pytest.raises(LedgerError):
        ledger.finish_deliveries(
            publication,
            [DeliveryOutcome("+13125550103", "sent", provider_id="SM3"), DeliveryOutcome("+13125550100", "failed")],
        )
    assert ledger.deliveries(publication)["+13125550103"].state == "claimed"


def test_a_chunk_is_claimed_in_the_transaction_recording_the_chunk_before(ledger: Ledger) -> None:
    from carecast.ledger import DeliveryOutcome

    publication = ledger.claim(ledger.save_draft(draft(1, channel="sms"), "default", "approved"))
    assert ledger.claim_deliveries(publication, ["+13125550100"]) == ["+13125550100"]
    sent = [DeliveryOutcome("+13125550100", "sent", provider_id="SM1")]
    assert ledger.claim_deliveries(publication, ["+13125550101"], finished=sent) == ["+13125550101"]
    records = ledger.deliveries(publication)
    assert [(r.address, r.state) for r in records.values()] == [("+13125550100", "sent"), ("+13125550101", "claimed")]
    # A retried call whose commit landed records nothing twice and claims nobody again.
    assert ledger.claim_deliveries(publication, ["+13125550101"], finished=sent) == []
    # An outcome for a delivery never claimed: nothing of the call happens.
    with pytest.raises(LedgerError):
        ledger.claim_deliveries(publication, ["+13125550102"], finished=[DeliveryOutcome("+13125550109", "sent")])
    assert set(ledger.deliveries(publication)) == {"+13125550100", "+13125550101"}


def test_subscribers_stream_a_page_at_a_time_with_suppressions(ledger: Ledger) -> None:
    from carecast.audience import Subscriber

    consent = datetime(2025, 1, 14, tzinfo=UTC)
    people = [
        Subscriber(f"reader{n}@example.com", f"Reader {n}", consent, "web form", "Yes.", "subscribed", None)
        for n in range(7)
    ]
    ledger.save_subscribers("newsletter", people)
    ledger.suppress("newsletter", "reader3@example.com", "unsubscribed", "one-click")
    streamed = list(ledger.stream_subscribers("newsletter", page=2))
    assert streamed == ledger.subscribers("newsletter")
    assert [s.address for s in streamed] == sorted(p.address for p in people)
    assert {s.address: s.status for s in streamed}["reader3@example.com"] == "unsubscribed"


def test_the_migrations_make_exactly_the_schema(ledger_url: str) -> None:
    """A change to carecast/ledger/schema.py needs a migration (README: Interrupted runs and racing runs)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from carecast.ledger.schema import Base

    opened = Ledger(ledger_url)
    with opened.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    opened.close()


@pytest.mark.parametrize("made_before", ["holds_tokens", "entry_fingerprints", "lookup_indexes"])
def test_a_ledger_made_before_migrations_is_upgraded_in_place(tmp_path: Path, made_before: str) -> None:
    from sqlalchemy import create_engine, inspect

    from carecast.ledger.schema import Base

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = create_engine(url)
    Base.metadata.create_all(old)  # as create_all made it, before the lookup indexes
    with old.begin() as connection:
        # Made by migrations only: create_all never made them.
        for table in ("clicks", "metrics", "short_links", "publication_audiences"):
            connection.exec_driver_sql(f"DROP TABLE {table}")
        for index in ("ix_publications_when", "ix_items_patient", "ix_deliveries_unknown", "ix_drafts_due"):
            connection.exec_driver_sql(f"DROP INDEX {index}")
        connection.exec_driver_sql("ALTER TABLE drafts DROP COLUMN publication_id")  # and before it
        connection.exec_driver_sql("ALTER TABLE items DROP COLUMN document")  # and before item documents
        connection.exec_driver_sql("ALTER TABLE deliveries DROP COLUMN claimed_at")  # and before claim times
        if made_before != "lookup_indexes":  # and before entry fingerprints
            connection.exec_driver_sql("DROP INDEX ix_items_entry_fingerprint")
            connection.exec_driver_sql("ALTER TABLE items DROP COLUMN entry_fingerprint")
        if made_before == "holds_tokens":  # and before the PHI holds and the tokens
            connection.exec_driver_sql("DROP TABLE phi_holds")
            connection.exec_driver_sql("DROP TABLE unsubscribe_tokens")
        connection.exec_driver_sql(  # a draft published then: not due once its publication is written beside it
            "INSERT INTO drafts (id, channel, account, draft_key, state, body, created_at, updated_at)"
            " VALUES (1, 'x', '@oakview', 'k', 'approved', '{}', '2025-01-01', '2025-01-01')"
        )
        connection.exec_driver_sql(
            "INSERT INTO publications (id, draft_id, channel, account, state, claimed_at, transient)"
            " VALUES (7, 1, 'x', '@oakview', 'sent', '2025-01-01', 0)"
        )
    old.dispose()
    opened = Ledger(url)
    opened.upsert_items([item(1)], {"rss:blog:1": "f1"})
    assert "phi_holds" in inspect(opened.engine).get_table_names()
    assert set(opened.known_entries(["f1", "f2"])) == {"f1"}
    assert "ix_deliveries_unknown" in {index["name"] for index in inspect(opened.engine).get_indexes("deliveries")}
    assert opened.due("x") == []
    opened.close()
