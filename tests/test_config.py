"""Configuration is validated at load time: every error names the file, the key path and what was expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from carecast.cli import main
from carecast.errors import ConfigError
from carecast.practice import load_settings
from tests.conftest import SAMPLE_CONFIG, write_config


def problems(file: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as raised:
        load_settings(file)
    assert raised.value.file == file
    return dict(raised.value.problems)


def test_the_sample_config_is_valid() -> None:
    settings = load_settings(SAMPLE_CONFIG / "carecast.yaml")
    assert settings.practice.timezone == "America/Chicago"
    assert set(settings.channels) >= {"newsletter", "x", "sms"}
    assert settings.channels["x"].type == "x"


def test_unknown_keys_are_rejected_everywhere(tmp_path: Path) -> None:
    file = write_config(
        tmp_path,
        {
            "practice": {"colour": "blue"},
            "sources": {"blog": {"urll": "x"}},
            "channels": {"x": {"too_long": "thread", "threads": True}},
        },
    )
    found = problems(file)
    assert "unknown key" in found["practice.colour"]
    assert "unknown key" in found["sources.blog.urll"]
    assert "unknown key" in found["channels.x.threads"]


def test_errors_say_what_was_expected(tmp_path: Path) -> None:
    file = write_config(
        tmp_path,
        {
            "practice": {"timezone": "Central", "name": None},
            "channels": {"sms": {"max_segments": 0}, "fax": {"type": "fax"}},
        },
    )
    found = problems(file)
    assert "IANA time zone" in found["practice.timezone"]
    assert found["practice.name"] == "required key is missing"
    assert "greater than or equal to 1" in found["channels.sms.max_segments"]
    assert "installed channels" in found["channels.fax.type"]


def test_rates_and_concurrency_are_checked_at_load(tmp_path: Path) -> None:
    channels = {"x": {"rate": "100 per 15 minutes", "concurrency": 2}, "sms": {"rate": "0/s", "concurrency": 9}}
    found = problems(write_config(tmp_path, {"channels": channels}))
    assert "a rate such as '50/s', '30/min', '100/15min' or '1000/h'" in found["channels.x.rate"]
    assert "at most 1 (this channel sends one request at a time), not 2" in found["channels.x.concurrency"]
    assert "above zero, not '0/s'" in found["channels.sms.rate"]
    assert "at most 8, not 9" in found["channels.sms.concurrency"]
    channels = {"x": {"rate": "20/5s"}, "sms": {"rate": "50/s", "concurrency": 4}, "newsletter": {"rate": "14/s"}}
    settings = load_settings(write_config(tmp_path / "valid", {"channels": channels}))
    assert settings.channels["sms"].concurrency == 4


def test_a_source_named_like_a_source_type_keeps_its_name_in_the_key_path(tmp_path: Path) -> None:
    # The sample's observances source is named "observances"; pydantic adds its type to the path as well.
    file = write_config(
        tmp_path,
        {"sources": {"observances": {"lead_days": -1}, "rss": {"type": "markdown", "paht": "content"}}},
    )
    found = problems(file)
    assert "greater than or equal to 0" in found["sources.observances.lead_days"]
    assert "unknown key" in found["sources.rss.paht"]


def test_references_to_unknown_sources_and_missing_files(tmp_path: Path) -> None:
    file = write_config(
        tmp_path,
        {"channels": {"sms": {"sources": ["blogg"]}}, "sources": {"stories": {"path": "nowhere"}}},
    )
    found = problems(file)
    assert "unknown source 'blogg'" in found["channels.sms.sources"]
    assert "no such folder" in found["sources.stories.path"]


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    assert "cannot be read" in problems(tmp_path / "missing.yaml")[""]
    broken = tmp_path / "broken.yaml"
    broken.write_text("practice:\n  name: [unclosed\n")
    assert "not valid YAML (line" in problems(broken)[""]


def test_check_exits_2_naming_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write_config(tmp_path, {"practice": {"timezone": "Mars/Olympus"}})
    assert main(["check", "--config", str(file)]) == 2
    error = capsys.readouterr().err
    assert f"{file}: practice.timezone:" in error
    assert main(["check", "--config", str(write_config(tmp_path / "good"))]) == 0


def test_an_invalid_observances_file_is_a_config_error(tmp_path: Path) -> None:
    file = write_config(tmp_path)
    observances = file.parent / "observances.yaml"
    observances.write_text(observances.read_text().replace("rule:", "rulez:", 1))
    with pytest.raises(ConfigError) as raised:
        load_settings(file)
    assert raised.value.file == observances
    assert any("rulez" in key for key, _ in raised.value.problems)


def test_a_file_that_is_not_utf8_is_a_config_error_and_check_exits_2_without_a_traceback(tmp_path: Path) -> None:
    file = write_config(tmp_path)
    file.write_bytes(file.read_bytes().replace(b"Oakview", "Oakv\xefew".encode("latin-1"), 1))
    assert "is not UTF-8 text (at byte offset" in problems(file)[""]
    checked = subprocess.run(
        [sys.executable, "-m", "carecast.cli", "check", "--config", str(file)], capture_output=True, text=True
    )
    assert checked.returncode == 2
    assert f"{file}: (top level): is not UTF-8 text" in checked.stderr and "Traceback" not in checked.stderr


@pytest.mark.parametrize("url", ["notaurl://", "not a url at all", "postgresql+nosuchdriver://u@h/db"])
def test_a_ledger_url_of_no_known_database_fails_check(tmp_path: Path, url: str) -> None:
    assert "a SQLAlchemy database URL" in problems(write_config(tmp_path, {"ledger": {"url": url}}))["ledger.url"]


@pytest.mark.parametrize(
    ("webhook", "expected"),
    [
        ("file:///etc/passwd", "URL scheme should be 'http' or 'https'"),
        ("ftp://hooks.example.com/x", "URL scheme should be 'http' or 'https'"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://127.0.0.1:9999/hook", "127.0.0.1 is a loopback address; set allow_private: true"),
    ],
)
def test_check_refuses_other_schemes_and_internal_notify_webhooks(tmp_path: Path, webhook: str, expected: str) -> None:
    found = problems(write_config(tmp_path, {"notify": {"webhook": webhook}}))
    assert expected in found["notify.webhook"], found


def test_a_local_notify_webhook_is_accepted_when_allowed(tmp_path: Path) -> None:
    settings = load_settings(
        write_config(tmp_path, {"notify": {"webhook": "http://127.0.0.1:9/", "allow_private": True}})
    )
    assert str(settings.notify.webhook) == "http://127.0.0.1:9/"
