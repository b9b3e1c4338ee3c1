"""``carecast run``'s look before Prefect loads (:mod:`carecast.precheck`): after a run it finds nothing to do but
the drafts waiting for approval (and those refused or held earlier, named with why), and it finds each kind of
work a run would do; a run with nothing to do never imports Prefect."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import pytest

from carecast import pipeline
from carecast.cli import main
from carecast.config import Settings, today_in
from carecast.ledger import Ledger
from carecast.model import Draft, now_utc
from carecast.practice import load_settings
from carecast.precheck import look
from tests.conftest import ROOT, write_config
from tests.factories import make_item
from tests.test_phi_holds import PHI_STORY

#: What a run of the sample leaves waiting: LinkedIn's drafts, under review.
REVIEWED = "linkedin"


def core_run(settings: Settings, ledger: Ledger) -> list[pipeline.Outcome]:
    """A run's steps, in the flow's order, without Prefect; the outcomes."""
    pipeline.sync_audience(settings, ledger)
    for source in settings.sources:
        pipeline.ingest(settings, ledger, source)
    outcomes = []
    for name in pipeline.channel_names(settings):
        outcomes += pipeline.adapt(settings, ledger, name)
        outcomes += pipeline.expire_late_drafts(settings, ledger, name)
        outcomes += pipeline.publish(settings, ledger, name)
    return outcomes


@pytest.fixture
def after_a_run(config_file: Path) -> Iterator[tuple[Settings, Ledger]]:
    settings = load_settings(config_file)
    ledger = Ledger(settings.ledger_url())
    core_run(settings, ledger)
    try:
        yield settings, ledger
    finally:
        ledger.close()


def shown(outcomes: list[pipeline.Outcome]) -> list[tuple[str, tuple[str, ...], str, str, str]]:
    return [(o.channel, o.item_ids, o.state, o.detail, o.title) for o in outcomes]


def test_after_a_run_nothing_to_do_but_what_waits_for_approval(after_a_run: tuple[Settings, Ledger]) -> None:
    settings, ledger = after_a_run
    found = look(settings, ledger, None)
    assert found.work == []
    assert all(not report.new and not report.edited and report.error is None for report in found.sources)
    assert found.waiting and {outcome.channel for outcome in found.waiting} == {REVIEWED}
    # What the look reports is what the run's steps would report: the same drafts waiting, nothing else.
    assert shown(found.waiting) == shown(core_run(settings, ledger))
    assert look(settings, ledger, ["x"]).waiting == []


def test_a_changed_template_is_work_for_the_drafts_waiting(after_a_run: tuple[Settings, Ledger]) -> None:
    settings, ledger = after_a_run
    folder = settings.path(settings.templates) / REVIEWED
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "note.txt").write_text("a template file the channel's drafts are rendered from\n")
    assert look(settings, ledger, None).work == [f"{REVIEWED}: 2 item(s) to draft"]


def test_a_new_post_is_work_and_its_poll_is_reported(after_a_run: tuple[Settings, Ledger]) -> None:
    settings, ledger = after_a_run
    folder = settings.path(settings.sources["stories"].path)  # type: ignore[union-attr]
    (folder / "a-new-story.md").write_text(
        # The practice's today: a story's date is a day where the practice is. UTC's date, read as the practice's
        # midnight, was still to come from 00:00 to 06:00 UTC (Chicago's evening), so the story was not new.
        f"---\ntitle: A new story\ndate: {today_in(settings):%Y-%m-%d}\n---\nA patient's road back to running.\n"
    )
    found = look(settings, ledger, None)
    [report] = [report for report in found.sources if report.source == "stories"]
    assert len(report.new) == 1
    assert found.work[0] == "source stories: 1 new, 0 edited"
    # The flow reports the look's poll as it is (it polls no source again).
    assert found.ingested()["stories"] == asdict(report)
    assert pipeline.SourceReport(**found.ingested()["stories"]) == report


def test_an_audience_change_a_due_draft_and_a_late_one_are_work(after_a_run: tuple[Settings, Ledger]) -> None:
    settings, ledger = after_a_run
    newsletter = settings.path(settings.audience) / "newsletter.csv"
    first = newsletter.read_text().splitlines()[1]
    newsletter.write_text(newsletter.read_text() + first.replace("maria.gonzalez@", "maria.g@") + "\n")
    assert look(settings, ledger, None).work == ["audience newsletter: 1 added, 0 updated"]

    ledger.upsert_items([make_item("rss:blog:due-now")])
    ledger.save_draft(Draft("x", ("rss:blog:due-now",), ("due now",)), settings.channels["x"].account, "approved")
    assert "x: 1 draft(s) due" in look(settings, ledger, ["x"]).work

    later = now_utc() + timedelta(days=8)  # past the slot of every draft waiting for review, and its late window
    assert f"{REVIEWED}: 2 draft(s) to expire" in look(settings, ledger, [REVIEWED], now=later).work


def test_drafts_refused_or_held_earlier_are_named_not_work(
    after_a_run: tuple[Settings, Ledger], capsys: pytest.CaptureFixture[str]
) -> None:
    settings, ledger = after_a_run
    yesterday = now_utc() - timedelta(days=1)
    ledger.upsert_items(
        [
            make_item("rss:blog:john", summary=PHI_STORY, title="Back on court", published=yesterday),
            make_item("rss:blog:linda", title="Linda's story", mentions_patient=True, published=yesterday),
        ]
    )
    told = {(o.channel, o.item_ids[0], o.state) for o in core_run(settings, ledger)}
    assert {("newsletter", "rss:blog:john", "held"), ("x", "rss:blog:john", "held")} <= told
    assert {("newsletter", "rss:blog:linda", "rejected"), ("x", "rss:blog:linda", "rejected")} <= told

    found = look(settings, ledger, None)
    assert found.work == []
    kept = {(o.channel, o.item_ids[0], o.state): o.detail for o in found.kept_back}
    assert kept[("x", "rss:blog:john", "held")].startswith("held for possible PHI: ")
    assert kept[("newsletter", "rss:blog:john", "held")].endswith("left out of the issue")
    assert "HIPAA" in kept[("x", "rss:blog:linda", "rejected")]
    assert "HIPAA" in kept[("newsletter", "rss:blog:linda", "rejected")]
    # The look is right: the run's steps find nothing to do and report only the drafts waiting for approval.
    assert shown(core_run(settings, ledger)) == shown(found.waiting)

    # Without Prefect, the summary names each draft not going out, with why.
    assert main(["run", "--config", str(settings.file)]) == 0
    out = capsys.readouterr().out
    assert "no flow run was started" in out and "Not going out" in out
    assert out.count("held for possible PHI") >= 2 and out.count("HIPAA") >= 2

    # A release is work: the released X draft is due, and the newsletter's item joins an issue.
    for stored in ledger.drafts("x", ["held"]) + ledger.drafts("newsletter", ["held"]):
        ledger.release(stored.id, "AUTH-2026-0301 signed today", "Jo")
    work = look(settings, ledger, None).work
    assert "x: 1 draft(s) due" in work and "newsletter: 2 item(s) to draft" in work  # the issue is screened whole


def test_a_digest_issue_waiting_for_approval_is_not_work(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, {"channels": {"newsletter": {"approval": "review"}}}))
    ledger = Ledger(settings.ledger_url())
    try:
        core_run(settings, ledger)
        found = look(settings, ledger, ["newsletter"])
        assert found.work == []
        [issue] = found.waiting
        assert issue.channel == "newsletter" and len(issue.item_ids) > 1
        again = [outcome for outcome in core_run(settings, ledger) if outcome.channel == "newsletter"]
        assert shown(again) == shown(found.waiting)
    finally:
        ledger.close()


def test_a_claim_left_by_a_dead_run_is_found_as_resume_stale_takes_it(after_a_run: tuple[Settings, Ledger]) -> None:
    settings, ledger = after_a_run
    ledger.upsert_items([make_item("rss:blog:cut-off")])
    draft = ledger.save_draft(
        Draft("x", ("rss:blog:cut-off",), ("cut off",)), settings.channels["x"].account, "approved"
    )
    publication = ledger.claim(draft)
    assert ledger.stale_claims("x", timedelta(hours=1)) == []
    assert ledger.stale_claims("x", timedelta(0)) == [publication]
    assert ledger.resume_stale("x", timedelta(0)) == [publication]


def test_a_run_with_nothing_to_do_never_imports_prefect(after_a_run: tuple[Settings, Ledger]) -> None:
    settings, _ = after_a_run
    script = (
        "import sys\n"
        "from carecast.cli import main\n"
        f"code = main(['run', '--config', {str(settings.file)!r}])\n"
        "print('prefect loaded' if 'prefect' in sys.modules else 'prefect not loaded')\n"
        "sys.exit(code)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith("prefect not loaded")
    assert "nothing new, nothing due; no flow run was started" in run.stdout
    assert "waiting for approval" in run.stdout  # LinkedIn's drafts, as a run reports them
    assert "Error" not in run.stderr and "Traceback" not in run.stderr
    assert not (settings.file.parent.parent / ".carecast" / "prefect" / "prefect.db").exists()
