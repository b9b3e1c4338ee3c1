"""A later ``carecast run`` exits 1 while a publication of the channels it ran is still ``unknown`` (left by a run
that died mid-send), saying which and what settles it; once resolved, the run exits 0 again."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from carecast.cli import main
from carecast.ledger import Ledger
from carecast.model import Draft
from carecast.practice import load_settings
from tests.factories import make_item

pytestmark = pytest.mark.prefect


def run(config_file: Path, channel: str) -> tuple[int, str]:
    """``carecast run --channel CHANNEL`` in this process: its exit code and what it printed. Read through a buffer of
    its own, not capsys: Prefect's console keeps the stream it first met, and capsys closes its stream after the
    test (every later test's flow logs would fail)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["run", "--config", str(config_file), "--channel", channel])
    return code, printed.getvalue()


def test_a_run_exits_1_while_an_earlier_send_is_unknown(prefect_api: None, config_file: Path) -> None:
    # Unredirected: should Prefect's console be made now, it keeps pytest's own stream, as in every other test.
    assert main(["run", "--config", str(config_file), "--channel", "x"]) == 0
    ledger = Ledger(load_settings(config_file).ledger_url())
    try:
        ledger.upsert_items([make_item("rss:blog:cut-off")])
        draft = ledger.save_draft(Draft("x", ("rss:blog:cut-off",), ("cut off mid-request",)), "default", "approved")
        publication = ledger.claim(draft)
        ledger.record_unknown(publication, "the run died mid-request")
    finally:
        ledger.close()

    code, said = run(config_file, "sms")
    assert code == 0 and "Still unknown" not in said, "another channel's doubt is not its"

    code, said = run(config_file, "x")
    assert code == 1
    assert f"Still unknown: 1 publication(s) whose send was cut off ({publication} x)" in said
    assert "carecast resolve ID --sent|--resend|--drop" in said

    assert main(["resolve", str(publication), "--drop", "--config", str(config_file)]) == 0
    code, said = run(config_file, "x")
    assert code == 0 and "Still unknown" not in said
