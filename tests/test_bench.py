"""The benchmark still runs: every scenario, both sides, at tiny sizes (``python -m bench --quick``).

No timing is asserted here (timing belongs in ``make bench``); the run proves each scenario's CareCast side and its
baseline do their work (each asserts its outcome) and that the results file gets its table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BEGIN, END, main
from bench.history import TABLES
from bench.scenarios import SCENARIOS
from tests.conftest import ROOT


# Every scenario twice over (CareCast and its baseline), some with a Prefect server: minutes on a loaded machine.
@pytest.mark.timeout(1500)
def test_every_scenario_runs_at_tiny_sizes(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    results.write_text(f"# Kept\n\nwritten by hand\n\n{BEGIN}\nthe previous table\n{END}\n\nafter\n")
    assert main(["--quick", "--results", str(results)]) == 0
    text = results.read_text()
    assert text.startswith("# Kept\n\nwritten by hand\n") and text.endswith("\n\nafter\n")
    assert "the previous table" not in text
    for name in SCENARIOS:
        assert f"| {name} |" in text


def test_prefect_history_is_pruned_by_the_retention() -> None:
    """bench.history on three real runs 50 days apart: the retention (90 days, prefect.toml) prunes the oldest with
    its task runs and logs, and the events older than Prefect's 7 days."""
    run = subprocess.run(
        [sys.executable, "-m", "bench.history", "--runs", "3", "--at", "3", "--every", "1200"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    [row] = [line for line in run.stdout.splitlines() if line.startswith("| 3 |")]
    cells = dict(zip(TABLES, [cell.strip() for cell in row.strip("|").split("|")][3:], strict=True))
    assert cells["flow_run"] == "3 -> 2"
    # Task runs are recorded from their events, after their run: the last run's may not all be in yet.
    counts = {table: [int(count.replace(",", "")) for count in cells[table].split(" -> ")] for table in TABLES}
    assert all(0 < pruned < whole for whole, pruned in (counts["task_run"], counts["log"]))
    whole, pruned = counts["events"]
    assert 0 < pruned < whole / 2  # the last run's events only
