"""The public command-line surface: measure and status print JSON that staff and tools rely on."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from carecast.cli import main


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> object:
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_measure_x(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(["measure", "--channel", "x", "Visit example.com today"], capsys) == {
        "channel": "x",
        "weighted_length": 35,
        "valid": True,
    }
    assert run_json(["measure", "--channel", "x", "a" * 281], capsys)["valid"] is False  # type: ignore[index]


def test_measure_sms(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(["measure", "--channel", "sms", "a" * 159 + "€"], capsys) == {
        "channel": "sms",
        "encoding": "GSM-7",
        "segments": 2,
    }


def test_measure_reads_standard_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("🎉" * 36 + "\n"))
    assert run_json(["measure", "--channel", "sms", "-"], capsys) == {
        "channel": "sms",
        "encoding": "UCS-2",
        "segments": 2,
    }


def test_the_console_script_is_installed() -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "carecast", "measure", "--channel", "x", "理学療法"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["weighted_length"] == 8


@pytest.mark.parametrize("command", [[], ["webhooks"], ["run"]])
def test_help_is_plain_text(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: carecast")
    for markup in ("``", ":func:", ":class:", ":mod:"):
        assert markup not in shown


def test_status_of_an_empty_ledger(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from carecast.ledger import Ledger
    from carecast.practice import load_settings

    Ledger(load_settings(config_file).ledger_url()).close()
    assert run_json(["status", "--json", "--config", str(config_file)], capsys) == []
    assert main(["status", "--config", str(config_file)]) == 0
    assert "no publications in the ledger at " in capsys.readouterr().out


def test_status_without_a_ledger_says_so_and_makes_none(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--config", str(config_file)]) == 2
    assert "ledger.url: no ledger at " in capsys.readouterr().err
    assert not (config_file.parent.parent / ".carecast").exists()


def test_status_pages_and_filters(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    from carecast.ledger import Ledger
    from carecast.model import Draft, Receipt
    from carecast.practice import load_settings
    from tests.factories import make_item

    ledger = Ledger(load_settings(config_file).ledger_url())
    for n in range(3):
        ledger.upsert_items([make_item(f"post-{n}")])
        publication = ledger.claim(ledger.save_draft(Draft("x", (f"post-{n}",), ("hi",)), "default", "approved"))
        ledger.record_sent(publication, Receipt(location=f"https://x.com/{n}", sent_at=datetime.now(UTC)))
    ledger.close()
    base = ["status", "--config", str(config_file)]
    assert [r["item_ids"] for r in run_json([*base, "--json"], capsys)] == [["post-0"], ["post-1"], ["post-2"]]
    assert [r["item_ids"] for r in run_json([*base, "--json", "--limit", "2"], capsys)] == [["post-1"], ["post-2"]]
    assert run_json([*base, "--json", "--channel", "sms"], capsys) == []
    assert run_json([*base, "--json", "--state", "failed"], capsys) == []
    assert len(run_json([*base, "--json", "--since", "2020-01-01"], capsys)) == 3
    assert main([*base, "--limit", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "channel", "state", "when", "items", "where"]
    assert lines[2].split()[-2:] == ["post-2", "https://x.com/2"]
