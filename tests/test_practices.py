"""Many practices in one project: ``config/practices/<slug>.yaml`` files, what each keeps to itself (outbox,
audience, templates with the shared ones behind, ledger), ``carecast practice new`` and ``carecast check`` over
them all, and the sender limits a deployed run paces its requests by."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from carecast import pipeline
from carecast.channel import make_channel
from carecast.cli import main
from carecast.ledger import Ledger, migrate
from carecast.practice import load_settings
from carecast.starter import StarterValues, write_starter
from tests.conftest import SAMPLE_CONFIG
from tests.providers.twilio import TwilioServer
from tests.test_live_run import ALL_OPEN, ENV, TWILIO


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A project's config folder holding the shared files of the sample and two practices made by the starter."""
    folder = tmp_path / "config"
    shutil.copytree(SAMPLE_CONFIG, folder)
    (folder / "carecast.yaml").unlink()
    for slug, zone in (("north", "America/New_York"), ("south", "America/Los_Angeles")):
        write_starter(folder, slug, StarterValues(name=f"{slug.title()} PT", timezone=zone), missing=set())
    return folder


def edit(file: Path, **sections: object) -> None:
    data = yaml.safe_load(file.read_text())
    data.update(sections)
    file.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_practice_keeps_its_outbox_ledger_and_audience_and_finds_shared_files(config_dir: Path) -> None:
    settings = load_settings(config_dir / "practices" / "north.yaml")
    project = config_dir.parent
    assert settings.slug == "north"
    assert settings.path(settings.outbox).resolve() == project / ".carecast" / "outbox" / "north"
    assert settings.ledger_url() == f"sqlite:///{project / '.carecast' / 'ledger-north.db'}"
    assert settings.path(settings.audience) == config_dir / "practices" / "north" / "audience"
    assert settings.path(settings.sources["observances"].file) == config_dir / "observances.yaml"  # type: ignore[union-attr]
    assert settings.template_folders() == [config_dir / "practices" / "north" / "templates", config_dir / "templates"]


def test_a_practice_template_wins_over_the_shared_one(config_dir: Path) -> None:
    own = config_dir / "practices" / "north" / "templates" / "sms"
    own.mkdir(parents=True)
    (own / "text.txt.j2").write_text("North's own: {{ body }}")
    north = load_settings(config_dir / "practices" / "north.yaml")
    south = load_settings(config_dir / "practices" / "south.yaml")
    assert make_channel(north, "sms").template("text.txt.j2", body="hi", link=None) == "North's own: hi"
    shared = make_channel(south, "sms").template("text.txt.j2", body="hi", link=None)
    assert shared.startswith("South PT: hi")


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_practices_sharing_one_postgresql_database_share_no_row(config_dir: Path, ledger_url: str) -> None:
    opened: list[tuple[object, Ledger]] = []
    try:
        new = []
        for slug in ("north", "south"):
            file = config_dir / "practices" / f"{slug}.yaml"
            edit(
                file,
                ledger={"url": ledger_url},
                sources={"observances": {"type": "observances"}, "stories": {"type": "markdown", "path": "content"}},
            )
            settings = load_settings(file)
            assert settings.ledger_url().endswith(f"options=-csearch_path%3Dcarecast_{slug}")
            ledger = Ledger(settings.ledger_url())
            opened.append((settings, ledger))
            new.append(pipeline.ingest(settings, ledger, "stories").new)
        # The same stories are new to each practice: each keeps its items in its own schema.
        assert new[0] and new[0] == new[1]
        (north_settings, north), (_, south) = opened
        pipeline.adapt(north_settings, north, "x")  # type: ignore[arg-type]
        assert north.drafts("x") and not south.drafts("x")
        # Each schema was migrated on its own: its own version table, at the newest revision; nothing elsewhere.
        engine = create_engine(ledger_url)
        with engine.connect() as connection:
            for slug in ("north", "south"):
                version = connection.execute(text(f"SELECT version_num FROM carecast_{slug}.alembic_version"))
                assert version.scalar_one() == ScriptDirectory(str(migrate.MIGRATIONS)).get_current_head()
            assert not inspect(connection).get_table_names(schema="public")
        engine.dispose()
    finally:
        for _, ledger in opened:
            ledger.close()


def test_check_checks_every_practice_and_names_the_broken_file(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(config_dir.parent)
    assert main(["check"]) == 0
    assert capsys.readouterr().out.count(": OK") == 2
    (config_dir / "practices" / "west.yaml").write_text("practice: {name: West}\nchannels: {}\n")
    assert main(["check"]) == 2
    captured = capsys.readouterr()
    assert captured.out.count(": OK") == 2
    assert "practices/west.yaml: practice.timezone: required key is missing" in captured.err
    assert "north" not in captured.err and "south" not in captured.err


def test_practice_new_asks_only_when_told_to_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(SAMPLE_CONFIG, tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["practice", "new", "east", "--name", "East PT", "--timezone", "America/Chicago"]) == 0
    written = (tmp_path / "config" / "practices" / "east.yaml").read_text()
    assert written.count("# TODO") == 8  # every value not given is a placeholder, marked
    assert main(["check", "--config", "config/practices/east.yaml"]) == 0
    assert main(["practice", "new", "east", "--name", "East PT", "--timezone", "America/Chicago"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["practice", "new", "west", "--name", "West PT", "--timezone", "Mars/Olympus"]) == 2
    assert main(["practice", "new", "West_1", "--name", "West PT", "--timezone", "UTC"]) == 2

    answers = iter(["https://www.westpt.com", "", "", "", "Denver", "CO", "80202", ""])
    file = write_starter(
        tmp_path / "config",
        "west",
        StarterValues(name="West PT", timezone="America/Denver"),
        missing={"website", "email", "phone", "street", "city", "region", "postal_code", "sms_number"},
        ask=lambda question, default: next(answers) or default,
    )
    settings = load_settings(file)
    assert (str(settings.practice.website), settings.practice.address.city) == ("https://www.westpt.com/", "Denver")
    assert "# TODO" not in file.read_text()


def test_practices_sharing_a_sender_share_its_limit(config_dir: Path) -> None:
    sms = {"account_sid": TWILIO.account_sid, "auth_token": {"env": "TWILIO_AUTH_TOKEN"}}
    limits = []
    for slug in ("north", "south"):
        file = config_dir / "practices" / f"{slug}.yaml"
        data = yaml.safe_load(file.read_text())
        data["channels"]["sms"]["credentials"] = sms
        file.write_text(yaml.safe_dump(data))
        limits.append(make_channel(load_settings(file), "sms").rate_limit())
    assert limits[0] == limits[1] and limits[0] is not None
    assert limits[0].name == f"carecast-sms-{TWILIO.account_sid.lower()}-13125550100"
    assert (limits[0].requests, limits[0].seconds) == (1, 1.0)
    assert TWILIO.auth_token not in limits[0].name
    # Without credentials a channel writes to the outbox: no provider, no limit.
    assert make_channel(load_settings(config_dir / "practices" / "north.yaml"), "x").rate_limit() is None


def test_publish_paces_every_provider_request_by_the_senders_limit(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in ENV.items():
        monkeypatch.setenv(variable, value)
    file = config_dir / "practices" / "north.yaml"
    with TwilioServer(credentials=TWILIO) as twilio:
        data = yaml.safe_load(file.read_text())
        data["channels"] = {
            "sms": {
                **data["channels"]["sms"],
                "sources": ["stories"],
                "max_age_days": 3650,
                "schedule": [],
                "credentials": {
                    "account_sid": TWILIO.account_sid,
                    "auth_token": {"env": "TWILIO_AUTH_TOKEN"},
                    "api_base": twilio.url,
                },
            }
        }
        news = config_dir / "practices" / "north" / "news"
        news.mkdir(parents=True)
        (news / "open-house.md").write_text(
            "---\ntitle: Open house\ndate: 2026-11-02 08:00\nkind: recognition\n---\n"
            "Come and meet the team on Saturday.\n"
        )
        data["sources"]["stories"] = {"type": "markdown", "path": "practices/north/news"}
        data["audience"] = "audience"
        file.write_text(yaml.safe_dump(data))
        settings = load_settings(file)
        ledger = Ledger(settings.ledger_url())
        try:
            pipeline.sync_audience(settings, ledger)
            assert pipeline.ingest(settings, ledger, "stories").error is None
            pipeline.adapt(settings, ledger, "sms")
            paced: list[str] = []
            outcomes = pipeline.publish(settings, ledger, "sms", now=ALL_OPEN, pace=paced.append)
        finally:
            ledger.close()
    assert [outcome.state for outcome in outcomes] == ["published"]
    assert len(twilio.messages) > 0
    assert paced == [make_channel(settings, "sms").rate_limit().name] * len(twilio.messages)  # type: ignore[union-attr]
