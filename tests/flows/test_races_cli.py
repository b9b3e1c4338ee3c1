"""Racing ``carecast run`` processes agree: 5 at once on one fresh ledger (SQLite and PostgreSQL) publish each
draft once (one outbox file per publication), all exit 0 and none prints a traceback. (Two first runs on a fresh
Prefect home: tests/test_prefect_home.py.)"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import fresh_ledger, write_config
from tests.prefect_server import BIN, PrefectServer

# Each carecast run loads Prefect and runs a flow: minutes for a round on a loaded 2-core machine.
pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.timeout(900)]

RACERS = 5
ROUNDS = 1
#: What a first run of the sample practice publishes to the outbox: the two newsletters and the reactivation email,
#: 3 posts, the text and the reactivation text, 3 statuses.
FIRST_RUN = {
    "newsletter": 1,
    "provider-update": 1,
    "reactivation-email": 1,
    "x": 3,
    "sms": 1,
    "reactivation-text": 1,
    "mastodon": 3,
}


def race(config: Path, env: dict[str, str], racers: int) -> list[subprocess.CompletedProcess[str]]:
    """``racers`` runs of ``carecast run`` started together; their results once all ended."""
    processes = [
        subprocess.Popen(
            [str(BIN / "carecast"), "run", "--config", str(config)],
            cwd=config.parent.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(racers)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def outbox(config: Path) -> Counter[str]:
    folder = config.parent.parent / ".carecast" / "outbox"
    return Counter(file.parent.name for file in folder.glob("*/*") if not file.name.startswith("."))


def assert_all_done(results: list[subprocess.CompletedProcess[str]]) -> None:
    for result in results:
        assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_racing_carecast_runs_publish_once_and_exit_0(
    dialect: str, tmp_path: Path, prefect_server: PrefectServer
) -> None:
    for number in range(1, ROUNDS + 1):
        folder = tmp_path / f"round-{number}"
        with fresh_ledger(dialect, folder) as url:
            config = write_config(folder, {"ledger": {"url": url}})
            assert_all_done(race(config, {**prefect_server.env, "PREFECT_HOME": str(folder / "prefect")}, RACERS))
            assert outbox(config) == FIRST_RUN, f"round {number}"
