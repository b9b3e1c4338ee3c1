"""``carecast report`` and the weekly report: its formats, its best-time suggestion, the opt-outs a send caused, and
the email with its charts, through the newsletter's SMTP server or to the outbox."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from carecast import pipeline, report
from carecast.channel import Outbox, make_channel
from carecast.charts import charts
from carecast.cli import main
from carecast.config import Settings
from carecast.ledger import Ledger
from carecast.model import now_utc
from carecast.practice import load_settings
from carecast.report_mail import report_message, send_report
from tests.conftest import write_config
from tests.providers.smtp import SmtpServer

PASSWORD = "report-smtp-password"
PNG = b"\x89PNG\r\n\x1a\n"


#: Tuesday 2026-12-01 17:00 UTC: every text recipient's window is open (the sample's zones are all in the US).
OPEN = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


def sent(settings: Settings, ledger: Ledger) -> None:
    """The sample practice's run, to the outbox, with short links, at a moment texts may go out (not the clock's:
    at night the texts would wait for their recipients' quiet hours to end)."""
    pipeline.sync_audience(settings, ledger)
    for source in settings.sources:
        pipeline.ingest(settings, ledger, source, now=OPEN)
    for channel in pipeline.channel_names(settings):
        pipeline.adapt(settings, ledger, channel, now=OPEN)
        pipeline.publish(settings, ledger, channel, now=OPEN)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(write_config(tmp_path, {"links": {"domain": "go.oakviewpt.com"}}))


@pytest.fixture
def ledger(settings: Settings):
    opened = Ledger(settings.ledger_url())
    sent(settings, opened)
    yield opened
    opened.close()


def click_every_link(ledger: Ledger, at: datetime, kind: str = "person", agent: str = "mobile") -> int:
    with ledger.engine.connect() as connection:
        links = [row[0] for row in connection.exec_driver_sql("SELECT id FROM short_links")]
    ledger.record_clicks([(link, kind, agent, at) for link in links])
    return len(links)


def test_the_report_in_each_format(settings: Settings, ledger: Ledger, tmp_path: Path, capsys) -> None:
    click_every_link(ledger, now_utc())
    click_every_link(ledger, now_utc(), "preview", "Slackbot")
    config = str(settings.file)
    assert main(["report", "--config", config, "--format", "csv", "--charts", str(tmp_path / "charts")]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    # Every channel of the sample that sends without review.
    assert {row["channel"] for row in rows} == {
        name for name, channel in settings.channels.items() if channel.enabled and channel.approval == "auto"
    }
    assert all(row["people"] == row["previews"] != "0" for row in rows if row["channel"] != "newsletter")
    assert {row["previews_by"] for row in rows} >= {"Slackbot 1"}
    assert sorted(path.name for path in (tmp_path / "charts").iterdir()) == [
        "best-weekday-hour.png",
        "clicks-per-week.png",
    ]
    assert all(path.read_bytes().startswith(PNG) for path in (tmp_path / "charts").iterdir())
    assert main(["report", "--config", config, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best_items"][0]["people"] >= 1 and "Apple Mail Privacy Protection" in data["notes"][0]
    sms = next(row for row in data["rows"] if row["channel"] == "sms")
    assert sms["segments"] == 1  # one text to the outbox, one segment with its short link
    assert main(["report", "--config", config, "--since", "2000-01-01"]) == 0
    table = capsys.readouterr().out
    assert "Best time to post" in table and "not enough clicks yet (1 of 5)" in table


def test_best_times_come_from_the_practice_own_clicks(settings: Settings, ledger: Ledger) -> None:
    # Tuesdays 12:xx in Chicago (18:xx UTC in winter), five times, and one Friday morning.
    tuesday = datetime(2026, 12, 8, 18, 15, tzinfo=UTC)
    for week in range(5):
        click_every_link(ledger, tuesday + timedelta(weeks=week))
    click_every_link(ledger, datetime(2026, 12, 11, 15, 0, tzinfo=UTC))
    built = report.build(settings, ledger, datetime(2026, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    # Three X posts, each link clicked at each of those times.
    assert built.best_times["x"] == ["Tue 12:00-13:00 (15 of 18 clicks)", "Fri 09:00-10:00 (3 of 18 clicks)"]
    assert [channel.schedule for channel in settings.channels.values()] == [
        channel.schedule for channel in load_settings(settings.file).channels.values()
    ]


def test_an_opt_out_soon_after_a_send_counts_against_it(settings: Settings, ledger: Ledger) -> None:
    ledger.suppress("sms", "+13125550117", "opted_out", "replied STOP")
    built = report.build(settings, ledger, now_utc() - timedelta(days=1), now_utc() + timedelta(minutes=1))
    # Against the latest text of the run: the sample's reactivation text went after the patients' text.
    assert [row.opt_outs for row in built.rows if row.channel == "reactivation-text"] == [1]
    assert all(row.opt_outs == 0 for row in built.rows if row.channel != "reactivation-text")
    ledger.suppress("newsletter:provider-update", "aruiz@lakevieworthoexample.com", "unsubscribed", "one list")
    built = report.build(settings, ledger, now_utc() - timedelta(days=1), now_utc() + timedelta(minutes=1))
    # That list's send (a row per item of its digest).
    assert {row.opt_outs for row in built.rows if row.channel == "provider-update"} == {1}


def test_the_weekly_email_goes_through_the_newsletter_smtp_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORT_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("REPORT_UNSUBSCRIBE_SECRET", "report-unsubscribe-secret")
    with SmtpServer(password=PASSWORD) as smtp:
        credentials = {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "username": "carecast",
            "password": {"env": "REPORT_SMTP_PASSWORD"},
        }
        newsletter = {"credentials": credentials, "unsubscribe_secret": {"env": "REPORT_UNSUBSCRIBE_SECRET"}}
        changes = {"channels": {"newsletter": newsletter}, "report": {"to": "frontdesk@oakviewpt.com"}}
        settings = load_settings(write_config(tmp_path, changes))
        ledger = Ledger(settings.ledger_url())
        try:
            built = report.build(settings, ledger, now_utc() - timedelta(days=7), now_utc())
        finally:
            ledger.close()
        images = charts(built.clicks, settings.practice.zone)
        message = report_message(settings, built, images, str(settings.report.to))
        channels = {name: make_channel(settings, name) for name in settings.channels}
        where = send_report(message, channels, Outbox(tmp_path / "outbox"), "week")
        assert where == f"smtp 127.0.0.1:{smtp.port}"
        [received] = smtp.messages
        assert received.rcpt_tos == ("frontdesk@oakviewpt.com",)
        parsed = received.parsed()
        images_sent = [part for part in parsed.walk() if part.get_content_type() == "image/png"]
        assert len(images_sent) == 2 and all(str(part["Content-ID"]) for part in images_sent)
        html = parsed.get_body(("html",))
        assert html is not None and "cid:" in html.get_content()
        assert not (tmp_path / "outbox").exists()


def test_without_smtp_the_weekly_email_goes_to_the_outbox(settings: Settings, ledger: Ledger, tmp_path: Path) -> None:
    built = report.build(settings, ledger, now_utc() - timedelta(days=7), now_utc())
    message = report_message(settings, built, charts(built.clicks, settings.practice.zone), settings.practice.email)
    channels = {name: make_channel(settings, name) for name in settings.channels}
    where = Path(send_report(message, channels, Outbox(tmp_path / "outbox"), "week"))
    assert where == tmp_path / "outbox" / "report" / "week.eml"
    parsed = BytesParser(policy=policy.default).parsebytes(where.read_bytes())
    assert parsed["To"] == settings.practice.email and "did it work?" in str(parsed["Subject"])
