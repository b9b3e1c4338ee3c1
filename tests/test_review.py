"""Deciding ahead of the slot, and being told why: the review list and its decisions, the default notification
route (email or outbox), the calendar, and the command line's reasons and usage errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest

from carecast import alerts, review
from carecast.cli import main
from carecast.errors import LedgerError
from carecast.ledger import Ledger
from carecast.practice import load_settings
from carecast.when import parse_since
from carecast_flows.calendar import DAYS, calendar_markdown
from tests.conftest import write_config
from tests.test_pipeline import run

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The sample practice (LinkedIn under review) with a newsletter subject limit no digest meets."""
    return write_config(tmp_path, {"channels": {"newsletter": {"max_subject_length": 20}}})


def test_review_lists_waiting_and_refused_drafts_with_why_and_applies_decisions(project: Path) -> None:
    settings = load_settings(project)
    ledger = Ledger(settings.ledger_url())
    try:
        run(settings, ledger)
        found = review.reviewable(settings, ledger)
        waiting = [r for r in found if r.channel == "linkedin"]
        assert len(waiting) == 2 and all(r.state == "pending" and r.decidable for r in waiting)
        assert all(r.slot is not None and "waiting for approval" in r.reason for r in waiting)
        (refused,) = [r for r in found if r.channel == "newsletter"]
        assert refused.state == "refused" and not refused.decidable
        assert "subject" in refused.reason and "20" in refused.reason

        edited, rejected = waiting
        before = calendar_markdown(settings, ledger, previews={edited.id: "/v2/artifacts/artifact/1"})
        assert "(*waiting*) [preview](/v2/artifacts/artifact/1)" in before
        assert f"linkedin: {rejected.title[:40]}" in before and before.count("[preview]") == 1
        with pytest.raises(LedgerError, match="needs a reason"):
            review.apply(settings, ledger, rejected.id, "reject")
        with pytest.raises(LedgerError, match="not held"):
            review.apply(settings, ledger, rejected.id, "release", reason="AUTH-1", by="Jo")
        outcome = review.apply(settings, ledger, edited.id, "approve", text="Edited ahead of the slot.")
        assert (outcome.state, outcome.detail) == ("approved", "approved with edits")
        review.apply(settings, ledger, rejected.id, "reject", reason="not for physicians")
        assert ledger.draft(edited.id).draft.parts == ("Edited ahead of the slot.",)
        assert (ledger.draft(rejected.id).state, ledger.draft(rejected.id).reason) == (
            "rejected",
            "not for physicians",
        )

        markdown = calendar_markdown(settings, ledger)
        header = next(line for line in markdown.splitlines() if line.startswith("| "))
        assert header.count("|") == DAYS + 1
        assert f"linkedin: {edited.title[:40]}" in markdown and "(*approved*)" in markdown
        assert "newsletter:" in markdown and "(*refused*)" in markdown
    finally:
        ledger.close()


def test_a_refusal_reaches_the_outbox_route_once_with_its_reason(project: Path) -> None:
    settings = load_settings(project)
    ledger = Ledger(settings.ledger_url())
    try:
        _, outcomes = run(settings, ledger)
        rows = [
            {"channel": o.channel, "items": list(o.item_ids), "title": o.title, "state": o.state, "detail": o.detail}
            for o in outcomes
        ]
        fresh = alerts.untold(ledger, rows)
        notice = alerts.notice_of(settings, "ingest", fresh)
        assert notice is not None
        where = alerts.send(settings, notice)
        alerts.mark_told(ledger, fresh)
        assert alerts.untold(ledger, rows) == []
    finally:
        ledger.close()
    (file,) = (settings.path(settings.outbox) / alerts.NOTIFICATIONS).glob("*.eml")
    assert where == str(file.resolve())
    email = message_from_bytes(file.read_bytes())
    assert email["To"] == "hello@oakviewpt.com" and "1 not sent" in email["Subject"]
    assert "newsletter:" in email.get_payload() and "subject" in email.get_payload()


def test_texts_never_take_blog_posts_even_from_a_markdown_source(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"channels": {"sms": {"sources": ["stories", "observances", "blog"]}}})
    post = config.parent / "content" / "a-blog-post.md"
    post.write_text("---\ntitle: Five stretches\ndate: 2026-11-02\nkind: post\n---\nStretch daily.\n")
    settings = load_settings(config)
    ledger = Ledger(settings.ledger_url())
    try:
        _, outcomes = run(settings, ledger)
        sms = [o for o in outcomes if o.channel == "sms"]
        kinds = {item.kind for o in sms for item in ledger.items(o.item_ids)}
        assert sms and kinds <= {"observance", "recognition"}
    finally:
        ledger.close()


NOW = datetime(2026, 12, 5, 10, 30, tzinfo=UTC)  # a Saturday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T09:00-06:00", datetime(2026, 11, 1, 15, tzinfo=UTC)),
        ("2d", NOW - timedelta(days=2)),
        ("36h", NOW - timedelta(hours=36)),
        ("3 days ago", NOW - timedelta(days=3)),
        ("yesterday", datetime(2026, 12, 4, tzinfo=UTC)),
        ("today", datetime(2026, 12, 5, tzinfo=UTC)),
        ("this week", datetime(2026, 11, 30, tzinfo=UTC)),
        ("Last week", NOW - timedelta(weeks=1)),
    ],
)
def test_since_takes_dates_durations_and_words(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_usage_errors_exit_2_and_name_what_is_valid(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Ledger(load_settings(project).ledger_url()).close()  # ledger commands never create one (that is exit 2 too)
    with pytest.raises(SystemExit) as since:
        main(["status", "--since", "fortnight", "--config", str(project)])
    assert since.value.code == 2 and "36h" in capsys.readouterr().err
    with pytest.raises(SystemExit) as channel:
        main(["status", "--channel", "mastadon", "--config", str(project)])
    assert channel.value.code == 2 and "choose from newsletter, " in capsys.readouterr().err
    with pytest.raises(SystemExit) as draft:
        main(["approve", "999999", "--config", str(project)])
    assert draft.value.code == 2 and "no draft 999999" in capsys.readouterr().err


def test_drafts_say_why(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(project)
    ledger = Ledger(settings.ledger_url())
    try:
        run(settings, ledger)
    finally:
        ledger.close()
    capsys.readouterr()
    assert main(["drafts", "--state", "refused", "--config", str(project)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["id", "channel", "state", "text", "why"]
    assert "newsletter" in out and "subject" in out
    assert main(["drafts", "--config", str(project)]) == 0
    assert "waiting for approval" in capsys.readouterr().out


def test_practice_new_takes_the_feed_and_never_cuts_a_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_config(tmp_path).parent
    long_name = ["--name", "Lakeside Physical Therapy", "--timezone", "America/Denver", "--config-dir", str(folder)]
    assert main(["practice", "new", "lakeside", *long_name]) == 2
    assert "--short-name" in capsys.readouterr().err and not (folder / "practices" / "lakeside.yaml").exists()
    feed = "https://lakesidept.example/feed.xml"
    assert main(["practice", "new", "lakeside", *long_name, "--short-name", "Lakeside PT", "--feed", feed]) == 0
    settings = load_settings(folder / "practices" / "lakeside.yaml")
    assert settings.practice.short_name == "Lakeside PT"
    assert str(settings.sources["blog"].url) == feed  # type: ignore[union-attr]
    assert settings.channels["x"].max_items_per_run == 2
