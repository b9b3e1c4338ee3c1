"""The ``pipeline`` flow end to end on the sample config, against a real Prefect API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from carecast.ledger import Ledger
from carecast.practice import load_settings
from tests.conftest import SAMPLE_CONFIG, write_config
from tests.providers.feeds import FeedServer

pytestmark = pytest.mark.prefect


def outbox_files(config_file: Path) -> list[Path]:
    settings = load_settings(config_file)
    return sorted(path for path in settings.path(settings.outbox).rglob("*") if path.is_file())


def test_the_flow_publishes_each_channel_then_nothing_more(prefect_api: None, config_file: Path) -> None:
    from carecast_flows.pipeline import pipeline

    result = pipeline(config_path=str(config_file))
    assert all(report["error"] is None for report in result["sources"])
    published = [row for row in result["outcomes"] if row["state"] == "published"]
    # Every channel of the sample: the patient newsletter and texts, the provider update, the reactivation email
    # and text, and the public.
    everyone = {"newsletter", "provider-update", "reactivation-email", "x", "sms", "reactivation-text", "mastodon"}
    assert {row["channel"] for row in published} == everyone
    files = outbox_files(config_file)
    assert {path.parent.name for path in files} == everyone

    again = pipeline(config_path=str(config_file))
    assert [row for row in again["outcomes"] if row["state"] == "published"] == []
    assert outbox_files(config_file) == files
    settings = load_settings(config_file)
    ledger = Ledger(settings.ledger_url())
    assert len(ledger.publications()) == len(published)
    ledger.close()


def test_a_dry_run_of_one_channel(prefect_api: None, config_file: Path) -> None:
    from carecast_flows.pipeline import pipeline

    result = pipeline(config_path=str(config_file), dry_run=True, channels=["x"])
    assert {row["channel"] for row in result["outcomes"]} == {"x"}
    assert {row["state"] for row in result["outcomes"]} <= {"preview", "rejected", "skipped"}
    assert all(row["preview"] for row in result["outcomes"] if row["state"] == "preview")
    assert outbox_files(config_file) == []


def test_the_cli_runs_the_flow_and_prints_the_summary(
    prefect_api: None, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from carecast.cli import main

    assert main(["run", "--config", str(config_file), "--channel", "sms"]) == 0
    out = capsys.readouterr().out
    assert "Publications" in out and "published" in out and "sms" in out
    # The command polled the sources before the flow; the flow's run still says what was ingested.
    assert re.search(r"^blog +[1-9][0-9]* new", out, re.MULTILINE), out
    assert main(["run", "--config", str(config_file), "--channel", "sms"]) == 0
    assert "nothing new to publish" in capsys.readouterr().out


def test_a_run_polls_each_feed_once(prefect_api: None, tmp_path: Path) -> None:
    from carecast.cli import main

    sample = (SAMPLE_CONFIG / "samples" / "oakview-blog.xml").read_bytes()
    newest = re.search(rb"<item>.*?</item>\s*", sample, re.DOTALL)
    assert newest is not None
    newest_id = "oakview-blog-2026-11-24-desk-ergonomics"  # its guid, as tests/sources/test_rss.py reads it
    with FeedServer() as host:
        host.feeds["/feed.xml"] = sample[: newest.start()] + sample[newest.end() :]  # the newest post not out yet
        blog = {"url": f"{host.url}/feed.xml", "allow_private": True}
        config = str(write_config(tmp_path, {"sources": {"blog": blog}}))

        def polls_of_a_run() -> int:
            before = len(host.requests_to("GET", "/feed.xml"))
            assert main(["run", "--config", config, "--channel", "x"]) == 0
            return len(host.requests_to("GET", "/feed.xml")) - before

        # A first run (work: the flow runs), a run with nothing new (no flow), a run with one new post (the flow):
        # the look's poll stands for the flow's, one request each.
        assert polls_of_a_run() == 1
        assert polls_of_a_run() == 1
        host.feeds["/feed.xml"] = sample
        assert polls_of_a_run() == 1
    settings = load_settings(Path(config))
    ledger = Ledger(settings.ledger_url())
    drafted = {item for stored in ledger.drafts("x", ["approved", "refused"]) for item in stored.draft.item_ids}
    drafted |= {item for record in ledger.publications() for item in record.item_ids}
    ledger.close()
    assert f"rss:blog:{newest_id}" in drafted, "the new post, which only the look's poll fetched, was drafted"


def test_the_ingest_job_sends_again_what_failed_transiently_once_its_wait_is_over(
    prefect_api: None, config_file: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from carecast import pipeline as core
    from carecast_flows.pipeline import ingest

    settings = load_settings(config_file)
    ledger = Ledger(settings.ledger_url())
    core.ingest(settings, ledger, "blog")
    core.adapt(settings, ledger, "x")
    stored = ledger.due("x")[0]
    publication = ledger.claim(stored.id)
    ledger.record_failed(publication, "429 from X", transient=True, not_before=datetime.now(UTC) - timedelta(seconds=1))
    result = ingest(practice=str(config_file), channels=["x"])
    retried = [row for row in result["outcomes"] if row["state"] == "published"]
    assert [row["items"] for row in retried] == [list(stored.draft.item_ids)], "only the retry goes out"
    assert {record.id: record.state for record in ledger.publications()}[publication] == "sent"
    ledger.close()


def test_the_run_form_s_dry_run_sends_nothing_and_items_limits_what_goes(prefect_api: None, config_file: Path) -> None:
    from carecast_flows.pipeline import ingest, publish

    ingest(practice=str(config_file), channels=["x"])
    preview = publish(practice=str(config_file), channels=["x"], dry_run=True)
    assert preview["outcomes"] and {row["state"] for row in preview["outcomes"]} <= {"preview", "rejected", "skipped"}
    assert outbox_files(config_file) == []

    settings = load_settings(config_file)
    ledger = Ledger(settings.ledger_url())
    first, *others = [stored.draft.item_ids[0] for stored in ledger.due("x")]
    ledger.close()
    assert others, "the sample has several x drafts due"
    result = publish(practice=str(config_file), channels=["x"], items=[first])
    assert [row["items"] for row in result["outcomes"] if row["state"] == "published"] == [[first]]
    assert len(outbox_files(config_file)) == 1
