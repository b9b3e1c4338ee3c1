"""A later ``carecast run`` exits 1 while a publication of the channels it ran is still ``unknown`` (left by a run
that died mid-send), saying which and what settles it; once resolved, the run exits 0 again."""

from __future__ import annotations

from pathlib import Path

import pytest

from carecast.cli import main
from carecast.ledger import Ledger
from carecast.model import Draft
from carecast.practice import load_settings
from tests.factories import make_item

pytestmark = pytest.mark.prefect


def test_a_run_exits_1_while_an_earlier_send_is_unknown(
    prefect_api: None, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(config_file), "--channel", "x"]) == 0
    ledger = Ledger(load_settings(config_file).ledger_url())
    try:
        ledger.upsert_items([make_item("rss:blog:cut-off")])
        draft = ledger.save_draft(Draft("x", ("rss:blog:cut-off",), ("cut off mid-request",)), "default", "approved")
        publication = ledger.claim(draft)
        ledger.record_unknown(publication, "the run died mid-request")
    finally:
        ledger.close()
    capsys.readouterr()

    assert main(["run", "--config", str(config_file), "--channel", "sms"]) == 0, "another channel's doubt is not its"
    assert "Still unknown" not in capsys.readouterr().out

    assert main(["run", "--config", str(config_file), "--channel", "x"]) == 1
    said = capsys.readouterr().out
    assert f"Still unknown: 1 publication(s) whose send was cut off ({publication} x)" in said
    assert "carecast resolve ID --sent|--resend|--drop" in said

    assert main(["resolve", str(publication), "--drop", "--config", str(config_file)]) == 0
    assert main(["run", "--config", str(config_file), "--channel", "x"]) == 0
    assert "Still unknown" not in capsys.readouterr().out
