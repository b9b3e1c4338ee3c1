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
    assert run_json(["status", "--json", "--config", str(config_file)], capsys) == []
