"""``carecast serve`` against a real ``prefect server`` process: deployments, runs through the API, approvals.

One server for the session (tests/flows/conftest.py: its own PREFECT_HOME and SQLite under a temporary folder, its
scheduler off so that only the API starts runs), and one ``carecast serve`` process for this module's practice. The
tests share that practice's ledger and run in file order: ingest first, then each channel.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update

from carecast.ledger import DraftRow, Ledger
from carecast.model import now_utc
from carecast.practice import load_settings
from tests.conftest import write_config
from tests.prefect_server import Api, PrefectServer, start_carecast_serve

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def practice(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The sample practice with X and SMS under review (X on no schedule), served by ``carecast serve``."""
    config = write_config(
        tmp_path_factory.mktemp("served"),
        {"channels": {"x": {"approval": "review", "schedule": []}, "sms": {"approval": "review"}}},
    )
    with start_carecast_serve(config, prefect_server):  # stopped before the server: the session fixture outlives it
        yield config


def outbox(config: Path, channel: str) -> list[Path]:
    folder = load_settings(config).path("../.carecast/outbox") / channel
    return sorted(folder.glob("*")) if folder.is_dir() else []


def test_one_deployment_per_job_with_zoned_schedules_and_parameters(api: Api, practice: Path) -> None:
    sources = api.deployment("ingest", "oakview-pt-sources")
    assert [s["schedule"]["interval"] for s in sources["schedules"]] == [30 * 60.0]
    newsletter = api.deployment("publish", "oakview-pt-newsletter")
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in newsletter["schedules"]] == [
        ("0 10 * * TUE", "America/Chicago")
    ]
    assert newsletter["parameters"] == {"practice": str(practice.resolve()), "channels": ["newsletter"]}
    properties = newsletter["parameter_openapi_schema"]["properties"]
    assert set(properties) == {"practice", "channels", "items", "dry_run"}
    assert properties["dry_run"]["type"] == "boolean"
    assert all(properties[name]["description"] for name in properties)
    sms = api.deployment("publish", "oakview-pt-sms")
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in sms["schedules"]] == [
        ("0 11 * * MON#1", "America/Chicago")
    ]
    assert api.deployment("publish", "oakview-pt-x")["schedules"] == []


def test_a_run_started_through_the_api_reads_sources_then_publishes(api: Api, practice: Path) -> None:
    api.finished(api.start("ingest", "oakview-pt-sources"))
    run_id = api.start("publish", "oakview-pt-newsletter")
    api.finished(run_id)
    assert [path.suffix for path in outbox(practice, "newsletter")] == [".eml"]
    assert api.flow_run(run_id)["name"] == "publish newsletter: 1 post"
    keys = {a["key"] for a in api.artifacts(run_id)}
    assert {"oakview-pt-published", "oakview-pt-calendar", "oakview-pt-newsletter-newsletter"} <= keys


def test_a_run_paused_for_approval_publishes_only_what_staff_approved(api: Api, practice: Path) -> None:
    settings = load_settings(practice)
    ledger = Ledger(settings.ledger_url())
    waiting = ledger.drafts("x", states=["pending"])
    assert len(waiting) == 3
    run_id = api.start("publish", "oakview-pt-x")
    paused = api.finished(run_id, "PAUSED")
    assert paused["name"] == "Suspended"
    kept, edited, refused = waiting
    run_input = {
        f"draft_{kept.id}": {"decision": "approve", "text": kept.draft.parts[0]},
        f"draft_{edited.id}": {"decision": "approve", "text": "Edited in the Prefect UI."},
        f"draft_{refused.id}": {"decision": "reject", "text": refused.draft.parts[0], "reason": "not this week"},
    }
    api("POST", f"/flow_runs/{run_id}/resume", {"run_input": run_input})
    api.finished(run_id)
    assert api.flow_run(run_id)["name"] == "publish x: 2 posts"
    bodies = [path.read_text() for path in outbox(practice, "x")]
    assert len(bodies) == 2 and any("Edited in the Prefect UI." in body for body in bodies)
    states = {stored.id: stored.state for stored in ledger.drafts("x")}
    assert states[refused.id] == "rejected"
    # LinkedIn is under review in the sample: its drafts wait for a decision too.
    assert {stored.channel for stored in ledger.drafts(states=["pending"])} <= {"sms", "linkedin"}
    ledger.close()


def test_a_draft_left_unapproved_past_its_slot_expires_and_is_never_sent(api: Api, practice: Path) -> None:
    settings = load_settings(practice)
    ledger = Ledger(settings.ledger_url())
    (pending,) = ledger.drafts("sms", states=["pending"])
    # Drafted 40 days ago: its first-Monday slot (and the 15 minutes late policy skip allows) are long past.
    engine = create_engine(settings.ledger_url())
    with engine.begin() as connection:
        connection.execute(
            update(DraftRow).where(DraftRow.id == pending.id).values(created_at=now_utc() - timedelta(days=40))
        )
    engine.dispose()
    run_id = api.start("publish", "oakview-pt-sms")
    api.finished(run_id)
    assert api.flow_run(run_id)["name"] == "publish sms: 0 posts"
    (expired,) = ledger.drafts("sms", states=["expired"])
    assert expired.id == pending.id and expired.reason and "not approved by" in expired.reason
    assert outbox(practice, "sms") == []
    assert all(record.channel != "sms" for record in ledger.publications())
    ledger.close()


def test_the_metrics_and_weekly_report_deployments_run(api: Api, practice: Path) -> None:
    """``metrics/<practice>`` reads the channels' numbers (none without credentials, said so) and
    ``report/<practice>`` writes its artifact and, without SMTP credentials, its email to the outbox."""
    report = api.deployment("report", "oakview-pt")
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in report["schedules"]] == [
        ("0 8 * * MON", "America/Chicago")
    ]
    assert [s["schedule"]["interval"] for s in api.deployment("metrics", "oakview-pt")["schedules"]] == [6 * 3600.0]
    api.finished(api.start("ingest", "oakview-pt-sources"))
    api.finished(api.start("publish", "oakview-pt-newsletter"))
    api.finished(api.start("metrics", "oakview-pt"))
    run_id = api.start("report", "oakview-pt")
    api.finished(run_id)
    assert "oakview-pt-report" in {a["key"] for a in api.artifacts(run_id)}
    [email] = outbox(practice, "report")
    assert email.suffix == ".eml" and b"image/png" in email.read_bytes()
