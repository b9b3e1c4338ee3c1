"""The benchmark still runs: every scenario, both sides, at tiny sizes (``python -m bench --quick``).

No timing is asserted here (timing belongs in ``make bench``); the run proves each scenario's CareCast side and its
baseline do their work (each asserts its outcome) and that the results file gets its table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import BEGIN, END, main
from bench.scenarios import SCENARIOS


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
