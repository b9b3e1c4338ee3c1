"""The pipeline's steps on the sample config, without Prefect: what reaches the outbox, and what never does twice."""

from __future__ import annotations

import json
import re
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path

import pytest

from carecast import pipeline
from carecast.config import Settings
from carecast.errors import LedgerError, RenderError
from carecast.ledger import Ledger
from carecast.practice import load_settings
from carecast.sources import read_source
from tests.conftest import write_config


def run(settings: Settings, ledger: Ledger, *, dry_run: bool = False) -> tuple[list, list[pipeline.Outcome]]:
    pipeline.sync_audience(settings, ledger)
    reports = [pipeline.ingest(settings, ledger, source) for source in settings.sources]
    outcomes: list[pipeline.Outcome] = []
    for channel in pipeline.channel_names(settings):
        outcomes += pipeline.adapt(settings, ledger, channel, dry_run=dry_run)
        if not dry_run:
            outcomes += pipeline.publish(settings, ledger, channel)
    return reports, outcomes


def outbox_files(settings: Settings) -> list[Path]:
    return sorted(path for path in settings.path(settings.outbox).rglob("*") if path.is_file())


@pytest.fixture
def settings(config_file: Path) -> Settings:
    return load_settings(config_file)


@pytest.fixture
def ledger(settings: Settings):
    opened = Ledger(settings.ledger_url())
    yield opened
    opened.close()


def test_a_run_publishes_every_channel_once(settings: Settings, ledger: Ledger) -> None:
    reports, outcomes = run(settings, ledger)
    assert all(report.error is None for report in reports), reports
    published = [outcome for outcome in outcomes if outcome.state == "published"]
    # The patient newsletter and texts, the provider update, the reactivation email and text, and the public.
    everyone = {"newsletter", "provider-update", "reactivation-email", "x", "sms", "reactivation-text", "mastodon"}
    assert {outcome.channel for outcome in published} == everyone
    files = outbox_files(settings)
    assert len(files) == len(published)
    assert {path.parent.name for path in files} == everyone
    eml = next(path for path in files if path.parent.name == "newsletter")
    message = BytesParser(policy=policy.default).parse(eml.open("rb"))
    assert message.get_content_type() == "multipart/alternative"
    x_post = json.loads(next(path for path in files if path.parent.name == "x").read_text())
    assert x_post["endpoint"] == "POST /2/tweets"
    assert all(record.state == "sent" for record in ledger.publications())

    _, again = run(settings, ledger)
    assert [outcome for outcome in again if outcome.state == "published"] == []
    assert outbox_files(settings) == files


def test_a_backlog_beyond_the_run_limit_is_skipped_for_good(settings: Settings, ledger: Ledger) -> None:
    _, outcomes = run(settings, ledger)
    skipped = [outcome for outcome in outcomes if outcome.channel == "x" and outcome.state == "skipped"]
    published = [outcome for outcome in outcomes if outcome.channel == "x" and outcome.state == "published"]
    assert len(published) == settings.channels["x"].max_items_per_run and skipped
    assert "max_items_per_run" in skipped[0].detail
    _, again = run(settings, ledger)
    assert [outcome for outcome in again if outcome.channel == "x"] == []


def test_the_digest_holds_several_items_and_x_one_each(settings: Settings, ledger: Ledger) -> None:
    run(settings, ledger)
    records = ledger.publications()
    newsletter = [record for record in records if record.channel == "newsletter"]
    assert len(newsletter) == 1 and len(newsletter[0].item_ids) > 1
    digests = {name for name, config in settings.channels.items() if config.type == "newsletter"}
    assert all(len(record.item_ids) == 1 for record in records if record.channel not in digests)
    assert len([record for record in records if record.channel == "x"]) == settings.channels["x"].max_items_per_run


def test_an_edited_item_is_noticed_and_not_republished(settings: Settings, ledger: Ledger) -> None:
    run(settings, ledger)
    feed = settings.path("samples/oakview-blog.xml")
    text = feed.read_text()
    first_title = text.split("<item>", 1)[1].split("<title>", 1)[1].split("</title>", 1)[0]
    feed.write_text(text.replace(first_title, first_title + " (updated)", 1))
    reports, outcomes = run(settings, ledger)
    blog = next(report for report in reports if report.source == "blog")
    assert len(blog.edited) == 1 and blog.new == []
    republished = [outcome for outcome in outcomes if outcome.state == "published"]
    assert all(blog.edited[0] not in outcome.item_ids for outcome in republished)


def test_a_poll_reads_only_the_entries_that_are_new_or_changed(config_file: Path) -> None:
    settings = load_settings(config_file)
    ledger = Ledger(settings.ledger_url())
    first = pipeline.ingest(settings, ledger, "blog")
    assert len(first.new) == 7 and first.unchanged == 0
    feed = settings.path("samples/oakview-blog.xml")
    text = feed.read_text()
    first_title = text.split("<item>", 1)[1].split("<title>", 1)[1].split("</title>", 1)[0]
    edited = text.replace(first_title, first_title + "!", 1)
    added = re.sub(r"<guid[^>]*>[^<]*</guid>", "<guid>new-post</guid>", text.split("<item>", 1)[1].split("</item>")[0])
    feed.write_text(edited.replace("<item>", f"<item>{added.replace('<title>', '<title>New: ')}</item><item>", 1))
    source = settings.sources["blog"]
    # Read against the ledger, only the new entry and the edited one are cleaned and sanitised into items.
    read = read_source("blog", source, settings, known=ledger.known_entries)
    assert len(read.items) == 2 and read.unchanged == 6
    second = pipeline.ingest(settings, ledger, "blog")
    assert len(second.new) == 1 and len(second.edited) == 1 and second.unchanged == 6
    assert ledger.items(second.edited)[0].title == first_title + "!"
    assert read_source("blog", source, settings, known=ledger.known_entries).items == []
    # New strip patterns may clean every entry otherwise: every entry is read again, and then passed over again.
    config = config_file.read_text().replace("timeout: 10", "timeout: 10\n    strip: ['^Nothing matches this$']")
    config_file.write_text(config)
    settings = load_settings(config_file)
    third = pipeline.ingest(settings, ledger, "blog")
    assert (third.new, third.edited, third.unchanged) == ([], [], 8)
    assert read_source("blog", settings.sources["blog"], settings, known=ledger.known_entries).items == []
    ledger.close()


def test_items_stored_without_fingerprints_are_read_once_more_then_passed_over(settings: Settings) -> None:
    """A ledger upgraded from before entry fingerprints (its items have none)."""
    ledger = Ledger(settings.ledger_url())
    source = settings.sources["blog"]
    ledger.upsert_items(read_source("blog", source, settings).items)
    assert ledger.known_entries(read_source("blog", source, settings).fingerprints.values()) == {}
    report = pipeline.ingest(settings, ledger, "blog")
    assert (report.new, report.edited, report.unchanged) == ([], [], 7)
    assert read_source("blog", source, settings, known=ledger.known_entries).unchanged == 7
    ledger.close()


def test_a_dry_run_previews_everything_and_publishes_nothing(settings: Settings, ledger: Ledger) -> None:
    _, outcomes = run(settings, ledger, dry_run=True)
    previews = [outcome for outcome in outcomes if outcome.state == "preview"]
    assert {outcome.channel for outcome in previews} == set(settings.channels)
    assert all(outcome.draft is not None and outcome.draft.text for outcome in previews)
    assert outbox_files(settings) == []
    assert ledger.publications() == []
    assert ledger.drafts() == []


def test_a_failing_source_does_not_stop_the_run(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    file = write_config(
        tmp_path,
        {"sources": {"blog": {"url": f"http://127.0.0.1:{port}/feed.xml", "timeout": 2, "allow_private": True}}},
    )
    settings = load_settings(file)
    ledger = Ledger(settings.ledger_url())
    reports, outcomes = run(settings, ledger)
    blog = next(report for report in reports if report.source == "blog")
    assert blog.error
    assert any(outcome.state == "published" for outcome in outcomes)
    ledger.close()


def test_a_permanent_publish_failure_is_recorded_once_and_never_retried(settings: Settings, ledger: Ledger) -> None:
    # The outbox refuses to overwrite a file it holds already (what was "sent"): permanent. (A full or read-only
    # outbox is transient: tests/channels/test_faults.py.)
    folder = settings.path(settings.outbox) / "x"
    folder.mkdir(parents=True)
    held = [folder / f"{number:06d}.json" for number in range(1, 100)]
    for path in held:
        path.write_text("sent before")
    _, outcomes = run(settings, ledger)
    x = [outcome for outcome in outcomes if outcome.channel == "x" and outcome.state != "skipped"]
    failed = [outcome for outcome in x if outcome.state == "failed"]
    assert failed and failed == x
    for path in held:
        path.unlink()
    _, again = run(settings, ledger)
    failed_items = {item for outcome in failed for item in outcome.item_ids}
    sent_now = {item for outcome in again if outcome.state == "published" for item in outcome.item_ids}
    assert failed_items.isdisjoint(sent_now)
    states = {record.item_ids[0]: record.state for record in ledger.publications() if record.channel == "x"}
    assert {states[item] for item in failed_items} == {"failed"}


def test_a_patient_story_without_authorization_is_refused_with_its_reason(tmp_path: Path) -> None:
    every_item = {"max_items_per_run": 50}
    file = write_config(tmp_path, {"channels": {name: every_item for name in ("newsletter", "x", "sms", "mastodon")}})
    settings = load_settings(file)
    ledger = Ledger(settings.ledger_url())
    _, outcomes = run(settings, ledger)
    refused = [outcome for outcome in outcomes if outcome.state == "rejected" and "HIPAA" in outcome.detail]
    # The sample patient story is authorized for the newsletter only.
    assert {outcome.channel for outcome in refused} == {"x", "sms", "mastodon"}
    published = {item for record in ledger.publications() for item in record.item_ids if record.channel == "newsletter"}
    assert refused[0].item_ids[0] in published
    _, again = run(settings, ledger)
    assert [outcome for outcome in again if outcome.state == "rejected"] == [], "staff are told once"
    ledger.close()


def test_review_channels_wait_for_approval(tmp_path: Path) -> None:
    file = write_config(tmp_path, {"channels": {"x": {"approval": "review"}}})
    settings = load_settings(file)
    ledger = Ledger(settings.ledger_url())
    _, outcomes = run(settings, ledger)
    x = [outcome for outcome in outcomes if outcome.channel == "x" and outcome.state != "skipped"]
    assert x and all(outcome.state == "waiting" for outcome in x)
    assert not (settings.path(settings.outbox) / "x").exists()
    ledger.close()


def review_settings(tmp_path: Path) -> Settings:
    return load_settings(write_config(tmp_path, {"channels": {"x": {"approval": "review"}}}))


def test_a_draft_goes_out_at_the_first_slot_whose_late_window_is_open(settings: Settings) -> None:
    # x: weekdays 09:00 and 12:30 in Chicago, send_within 2h; 2026-11-03 is a Tuesday in CST (UTC-6).
    assert pipeline.draft_slot(settings, "x", datetime(2026, 11, 3, 16, 30, tzinfo=UTC)) == datetime(
        2026, 11, 3, 15, 0, tzinfo=UTC
    )
    assert pipeline.draft_slot(settings, "x", datetime(2026, 11, 3, 17, 30, tzinfo=UTC)) == datetime(
        2026, 11, 3, 18, 30, tzinfo=UTC
    )
    unscheduled = settings.model_copy(
        update={"channels": {**settings.channels, "x": settings.channels["x"].model_copy(update={"schedule": []})}}
    )
    assert pipeline.draft_slot(unscheduled, "x", datetime(2026, 11, 3, 16, 30, tzinfo=UTC)) is None


def test_unapproved_drafts_expire_after_their_slot_and_are_never_sent(tmp_path: Path) -> None:
    settings = review_settings(tmp_path)
    ledger = Ledger(settings.ledger_url())
    run(settings, ledger)
    waiting = pipeline.waiting(settings, ledger, "x")
    assert waiting and all(slot is not None for _, slot in waiting)
    assert pipeline.expire_late_drafts(settings, ledger, "x") == []  # their slot is still ahead
    later = max(slot for _, slot in waiting if slot is not None) + timedelta(hours=2, minutes=1)
    expired = pipeline.expire_late_drafts(settings, ledger, "x", now=later)
    assert {outcome.state for outcome in expired} == {"expired"}
    assert len(expired) == len(waiting)
    assert pipeline.waiting(settings, ledger, "x") == []
    assert pipeline.publish(settings, ledger, "x") == []
    assert all(record.channel != "x" for record in ledger.publications())
    ledger.close()


def test_staff_approve_edit_or_reject_each_draft(tmp_path: Path) -> None:
    settings = review_settings(tmp_path)
    ledger = Ledger(settings.ledger_url())
    run(settings, ledger)
    first, second, third = (stored for stored, _ in pipeline.waiting(settings, ledger, "x")[:3])
    kept = pipeline.decide(settings, ledger, first.id, approve=True, text=pipeline.editable_text(first.draft))
    assert (kept.state, kept.detail) == ("approved", "approved as drafted")
    edited = pipeline.decide(settings, ledger, second.id, approve=True, text="Edited by staff.\n---\nSecond post.")
    assert edited.draft is not None and edited.draft.parts == ("Edited by staff.", "Second post.")
    assert edited.draft.measures["parts"][0]["weighted_length"] == len("Edited by staff.")
    with pytest.raises(RenderError):
        pipeline.decide(settings, ledger, third.id, approve=True, text="x" * 300)
    rejected = pipeline.decide(settings, ledger, third.id, approve=False, reason="not this week")
    assert (rejected.state, rejected.detail) == ("rejected", "not this week")
    with pytest.raises(LedgerError):
        pipeline.decide(settings, ledger, third.id, approve=True)
    published = pipeline.publish(settings, ledger, "x")
    assert sorted(outcome.item_ids for outcome in published) == sorted([first.draft.item_ids, second.draft.item_ids])
    assert any("Edited by staff." in path.read_text() for path in outbox_files(settings))
    ledger.close()


def test_a_run_can_be_limited_to_some_items(settings: Settings, ledger: Ledger) -> None:
    for source in settings.sources:
        pipeline.ingest(settings, ledger, source)
    everything = pipeline.adapt(settings, ledger, "x", dry_run=True)
    chosen = everything[0].item_ids[0]
    pipeline.adapt(settings, ledger, "x", items=[chosen])
    assert [stored.draft.item_ids for stored in ledger.due("x")] == [(chosen,)]
    published = pipeline.publish(settings, ledger, "x", items=[chosen])
    assert [outcome.item_ids for outcome in published] == [(chosen,)]


def adapt_then_publish(settings: Settings, ledger: Ledger, channel: str) -> list[pipeline.Outcome]:
    return pipeline.adapt(settings, ledger, channel) + pipeline.publish(settings, ledger, channel)


def test_a_staff_rejection_is_final_even_on_an_auto_channel(settings: Settings, ledger: Ledger) -> None:
    pipeline.ingest(settings, ledger, "blog")
    pipeline.adapt(settings, ledger, "x")
    first = ledger.drafts("x", ["approved"])[0]
    ledger.set_draft_state(first.id, "rejected", "not this week")
    outcomes = adapt_then_publish(settings, ledger, "x")
    assert ledger.draft(first.id).state == "rejected"
    assert all(first.draft.item_ids != outcome.item_ids for outcome in outcomes if outcome.state == "published")


def test_an_authorization_withdrawn_after_approval_stops_the_send(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, {"channels": {"newsletter": {"schedule": []}}}))
    ledger = Ledger(settings.ledger_url())
    pipeline.ingest(settings, ledger, "stories")
    pipeline.adapt(settings, ledger, "newsletter")
    [digest] = ledger.drafts("newsletter", ["approved"])
    story = settings.path("content/2026-11-12-james-back-on-the-trail.md")
    assert any("james" in item for item in digest.draft.item_ids)
    # The patient withdrew his authorization: the front desk removes it from the post before the slot.
    story.write_text(re.sub(r"authorization:\n(  .*\n)+", "", story.read_text()))
    pipeline.ingest(settings, ledger, "stories")
    outcomes = pipeline.publish(settings, ledger, "newsletter")
    assert [outcome.state for outcome in outcomes] == ["rejected"] and "HIPAA" in outcomes[0].detail
    assert ledger.publications() == []
    assert ledger.draft(digest.id).state == "refused"
    ledger.close()


def test_a_skipped_item_loses_its_waiting_draft_too(tmp_path: Path) -> None:
    settings = load_settings(
        write_config(tmp_path, {"channels": {"x": {"approval": "review", "max_items_per_run": 1}}})
    )
    ledger = Ledger(settings.ledger_url())
    pipeline.ingest(settings, ledger, "blog")
    pipeline.adapt(settings, ledger, "x")
    [waiting] = ledger.drafts("x", ["pending"])
    ledger.set_draft_state(waiting.id, "approved")
    # A newer post arrives before x's slot: the channel sends one item a run, the newest.
    settings.path("content/2026-11-26-thanksgiving-hours.md").write_text(
        "---\ntitle: Thanksgiving hours\ndate: 2026-11-26 08:00\nkind: post\n---\nWe close at noon on Wednesday.\n"
    )
    pipeline.ingest(settings, ledger, "stories")
    outcomes = adapt_then_publish(settings, ledger, "x")
    published = [outcome for outcome in outcomes if outcome.state == "published"]
    assert published == [], "the only approved draft belonged to an item skipped in favour of newer ones"
    assert waiting.draft.item_ids[0] in {outcome.item_ids[0] for outcome in outcomes if outcome.state == "skipped"}
    ledger.close()


def test_a_claim_left_by_a_dead_sender_with_nothing_in_flight_is_resumed_and_sent_once(
    settings: Settings, ledger: Ledger
) -> None:
    pipeline.ingest(settings, ledger, "blog")
    pipeline.adapt(settings, ledger, "x")
    stuck = ledger.claim(ledger.due("x")[0].id)
    assert [o.state for o in pipeline.publish(settings, ledger, "x") if o.state != "published"] == []
    assert {record.id: record.state for record in ledger.publications()}[stuck] == "claimed"  # alive: left alone
    with ledger.engine.begin() as connection:  # the claim was made two hours ago by a process that then died
        connection.exec_driver_sql(
            "UPDATE publications SET claimed_at = ? WHERE id = ?", (datetime.now(UTC) - timedelta(hours=2), stuck)
        )
    outcomes = pipeline.publish(settings, ledger, "x")
    assert [outcome.state for outcome in outcomes] == ["published"]
    assert {record.id: record.state for record in ledger.publications()}[stuck] == "sent"
    assert pipeline.publish(settings, ledger, "x") == []


def test_a_transient_failure_waits_for_its_retry_time(settings: Settings, ledger: Ledger) -> None:
    pipeline.ingest(settings, ledger, "blog")
    pipeline.adapt(settings, ledger, "x")
    draft_id = ledger.due("x")[0].id
    publication = ledger.claim(draft_id)
    later = datetime.now(UTC) + timedelta(minutes=10)
    ledger.record_failed(publication, "429 from X", transient=True, not_before=later)
    assert draft_id not in [stored.id for stored in ledger.due("x")]
    assert [stored.id for stored in ledger.due("x", later, retries_only=True)] == [draft_id]
    assert ledger.due("x", retries_only=True) == []


def long_post(settings: Settings, ledger: Ledger) -> str:
    """A blog post X refuses: its title alone, beside the link, is over 280 (a long text is never refused: it is a
    teaser); returns its id."""
    from tests.factories import make_item

    title = " ".join(f"Stretch number {n} eases the back after a long day at the desk." for n in range(6))
    item = make_item("rss:blog:long", title=title, published=datetime.now(UTC))
    ledger.upsert_items([item])
    return item.id


def x_only(config_file: Path, **x: object) -> Settings:
    settings = load_settings(config_file)
    x_settings = settings.channels["x"].model_copy(update=x)
    return settings.model_copy(update={"channels": {"x": x_settings}})


def test_a_refused_draft_stays_refused_until_its_item_config_or_templates_change(
    config_file: Path, ledger: Ledger
) -> None:
    settings = x_only(config_file, max_thread_parts=2, max_items_per_run=5)
    item_id = long_post(settings, ledger)
    [refused] = pipeline.adapt(settings, ledger, "x")
    assert (refused.state, refused.item_ids) == ("rejected", (item_id,))
    [stored] = ledger.drafts("x")
    fingerprint = ledger.refusal_fingerprints("x", settings.channels["x"].account)[stored.draft.key]

    # Nothing it was rendered from changed: no outcome, and the refusal is kept as it was.
    assert pipeline.adapt(settings, ledger, "x") == []
    assert ledger.drafts("x") == [stored]

    # Another config renders it again: refused for the reason staff heard of already (no outcome), and the new
    # fingerprint is kept.
    wider = x_only(config_file, max_thread_parts=3, max_items_per_run=5)
    assert pipeline.adapt(wider, ledger, "x") == []
    assert "280 weighted" in (refused.detail or "")
    assert ledger.refusal_fingerprints("x", settings.channels["x"].account)[stored.draft.key] != fingerprint

    # A template that makes it fit lets it through.
    (settings.path(settings.templates) / "x" / "post.txt.j2").write_text("{{ body }}\n{{ link }}\n")
    assert pipeline.adapt(settings, ledger, "x") == []
    assert [draft.state for draft in ledger.drafts("x")] == ["approved"]


def test_an_edit_renders_a_refused_item_again(config_file: Path, ledger: Ledger) -> None:
    from tests.factories import make_item

    settings = x_only(config_file, max_thread_parts=2, max_items_per_run=5)
    item_id = long_post(settings, ledger)
    [refused] = pipeline.adapt(settings, ledger, "x")
    assert refused.state == "rejected"
    ledger.upsert_items([make_item(item_id, title="Short now.", summary="Short now.", published=datetime.now(UTC))])
    assert pipeline.adapt(settings, ledger, "x") == []
    assert [draft.state for draft in ledger.drafts("x")] == ["approved"]


MOVING_POST = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Oakview blog</title><link>https://www.oakviewpt.com/blog</link>
<item><title>Ankle sprains: the first 72 hours</title><link>{link}</link><pubDate>{date}</pubDate>
<description>Rest, ice, then move: what to do after a sprain.</description></item>
</channel></rss>
"""


@pytest.mark.parametrize("stored_as", ["its normalised link", "an older CareCast's link id"])
def test_a_post_without_guid_that_moves_is_not_published_again_on_any_channel(tmp_path: Path, stored_as: str) -> None:
    settings = load_settings(write_config(tmp_path, {"sources": {"blog": {"url": "moving.xml"}}}))
    feed = settings.path("moving.xml")
    date = format_datetime(datetime.now(UTC) - timedelta(days=1), usegmt=True)
    feed.write_text(MOVING_POST.format(link="http://www.oakviewpt.com/blog/ankle-sprains/", date=date))
    ledger = Ledger(settings.ledger_url())
    if stored_as == "an older CareCast's link id":
        # Before links were normalised further, a first poll stored the post under its scheme and www.
        first = read_source("blog", settings.sources["blog"], settings).items[0]
        old = replace(first, id="rss:blog:http://www.oakviewpt.com/blog/ankle-sprains", id_from_link=False)
        ledger.upsert_items([old])
    _, outcomes = run(settings, ledger)
    blog_posts = [o for o in outcomes if o.state == "published" and any(i.startswith("rss:blog:") for i in o.item_ids)]
    assert sorted(outcome.channel for outcome in blog_posts) == ["mastodon", "newsletter", "x"]  # once each
    # One item, under the id it was first stored with.
    assert {i for o in blog_posts for i in o.item_ids if i.startswith("rss:blog:")} == {
        "rss:blog:http://www.oakviewpt.com/blog/ankle-sprains"
        if stored_as == "an older CareCast's link id"
        else "rss:blog:https://oakviewpt.com/blog/ankle-sprains"
    }
    published = len(ledger.publications())
    for moved in (
        "https://oakviewpt.com/blog/ankle-sprains?utm_source=feed&utm_medium=rss&fbclid=abc",
        "https://www.oakviewpt.com/blog/ankle-sprains/#comments",
    ):
        feed.write_text(MOVING_POST.format(link=moved, date=date))
        reports, outcomes = run(settings, ledger)
        assert next(report for report in reports if report.source == "blog").new == []
        assert [outcome for outcome in outcomes if outcome.state == "published"] == []
    assert len(ledger.publications()) == published
    ledger.close()


def test_a_bad_markdown_file_fails_alone_and_the_other_stories_are_ingested(settings: Settings, ledger: Ledger) -> None:
    (settings.path("content") / "broken.md").write_text("---\ndate: 2026-11-01\n---\nNo title.\n", encoding="utf-8")
    report = pipeline.ingest(settings, ledger, "stories")
    assert report.error is None
    assert report.failures == ["broken.md: title: required key is missing"]
    assert len(report.new) == 5
