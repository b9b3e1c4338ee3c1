"""``python -m bench.history [--runs 1000] [--at 0,250,500,1000]``: Prefect's own history over many runs, kept
whole and pruned by the retention (issue 24, item 5).

The ``pipeline`` flow of ``carecast run`` (:func:`carecast_flows.pipeline.run_here`, every task and log of a real
run) is run ``--runs`` times on the sample practice, one run after another, against one temporary Prefect API
(:mod:`carecast_flows.server`), which keeps every run: it prunes only as it stops. At each checkpoint the database is
copied (SQLite's online backup) and measured twice: as it is (no pruning), and pruned as the temporary API prunes
when a run ends (:func:`carecast_flows.server._prune_history`, run in a process of its own on the copy, with the
project's prefect.toml) after the copy's history was dated as a practice running four times a day would have made
it: run ``i`` of ``k`` ended ``(k - i) * 6`` hours before now (``--every``), each event moved with its run.

Pruning after every run and pruning the copy once delete the same rows (the vacuum deletes whatever is older than the
retention). A file SQLite has freed pages in is not shrunk, but its next writes reuse them: the pruned size given is
the pages in use, what a file pruned after every run stays near.
"""

from __future__ import annotations

import argparse
import atexit
import bisect
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The rows of a run's history, by Prefect's table names.
TABLES = ("flow_run", "task_run", "flow_run_state", "task_run_state", "log", "artifact", "events", "event_resources")
STAMP = "%Y-%m-%d %H:%M:%S.%f"


def measure(database: Path) -> dict[str, float]:
    """The file's size and the size of its pages in use, in MB, and each table's rows."""
    with sqlite3.connect(database) as connection:
        page = connection.execute("PRAGMA page_size").fetchone()[0]
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        rows = {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}
    return {"file_mb": database.stat().st_size / 2**20, "used_mb": (pages - free) * page / 2**20, **rows}


def _stamp(value: str) -> datetime:
    return datetime.strptime(value[:26].ljust(26, "0") if "." in value else value + ".000000", STAMP)


def backdate(database: Path, now: datetime, every: timedelta) -> None:
    """Date the copy's history as made at one run ``every`` up to ``now``: the ``k``-th of ``k`` runs ended now, the
    first ``(k - 1) * every`` before; every row of a run (its task runs, states, logs, artifacts, and the events
    that happened while it ran) moved by its run's shift."""
    with sqlite3.connect(database) as connection:
        runs = connection.execute("SELECT id, created FROM flow_run ORDER BY created").fetchall()
        starts = [_stamp(created) for _, created in runs]
        shifts = [now - (len(runs) - 1 - number) * every - starts[-1] for number in range(len(runs))]

        def moved(value: str | None) -> str | None:
            if value is None:
                return None
            when = _stamp(value)
            return (when + shifts[max(bisect.bisect_right(starts, when) - 1, 0)]).strftime(STAMP)

        connection.create_function("moved", 1, moved, deterministic=True)
        for table, columns in {
            "flow_run": ("created", "updated", "start_time", "end_time", "expected_start_time"),
            "task_run": ("created", "updated", "start_time", "end_time", "expected_start_time"),
            "flow_run_state": ("created", "updated", "timestamp"),
            "task_run_state": ("created", "updated", "timestamp"),
            "log": ("created", "updated", "timestamp"),
            "artifact": ("created", "updated"),
            "events": ("occurred", "received", "created", "updated"),
            "event_resources": ("occurred", "created", "updated"),
        }.items():
            sets = ", ".join(f"{column} = moved({column})" for column in columns)
            connection.execute(f"UPDATE {table} SET {sets}")


def prune(database: Path, env: dict[str, str]) -> None:
    """Prune ``database`` as the temporary API does when a run ends, with the project's retention settings."""
    code = "import asyncio; from carecast_flows.server import _prune_history; asyncio.run(_prune_history())"
    url = {"PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database}"}
    subprocess.run([sys.executable, "-c", code], env=env | url, check=True)


def checkpoint(database: Path, folder: Path, runs: int, env: dict[str, str], every: timedelta) -> str:
    """One line of the table: the database after ``runs`` runs, whole and pruned."""
    kept = folder / f"after-{runs}.db"
    with sqlite3.connect(database) as source, sqlite3.connect(kept) as copy:
        source.backup(copy)
    whole = measure(kept)
    if runs:
        backdate(kept, datetime.now(UTC).replace(tzinfo=None), every)
        prune(kept, env)
    pruned = measure(kept)
    kept.unlink()
    cells = [f"{whole['file_mb']:.2f} MB", f"{pruned['used_mb']:.2f} MB"]
    cells += [f"{whole[table]:,} -> {pruned[table]:,}" for table in TABLES]
    return f"| {runs} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--at", default="0,250,500,1000", help="checkpoints, runs made (comma-separated)")
    parser.add_argument("--every", type=float, default=6.0, help="hours between two runs of the practice (default 6)")
    args = parser.parse_args()
    points = sorted({int(value) for value in args.at.split(",") if int(value) <= args.runs})
    for key in [key for key in os.environ if key.startswith("PREFECT_")]:
        del os.environ[key]  # the project's prefect.toml decides, as for carecast run
    folder = Path(tempfile.mkdtemp(prefix="carecast-history-"))
    # Registered before the temporary API's own stop, so run after it (exit handlers run last first).
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _measure_runs(folder, args.runs, points, timedelta(hours=args.every))


def _measure_runs(folder: Path, runs: int, points: list[int], every: timedelta) -> None:
    from carecast.project import project_prefect
    from tests.conftest import write_config

    config = write_config(folder)
    shutil.copy(ROOT / "prefect.toml", folder)
    os.chdir(folder)
    os.environ.update(project_prefect(config))  # over the test suite's home, which importing its conftest set
    env = dict(os.environ)
    from carecast.ledger import Ledger
    from carecast.practice import load_settings
    from carecast_flows.server import start_temporary_api
    from tests.test_precheck import core_run

    settings = load_settings(config)
    ledger = Ledger(settings.ledger_url())
    core_run(settings, ledger)  # the first run's work done: each measured run is a whole run finding nothing new
    ledger.close()
    home = Path(os.environ["PREFECT_HOME"])
    start_temporary_api(home)()
    from carecast_flows.pipeline import run_here

    database = home / "prefect.db"
    print("| runs | file, kept whole | in use, pruned | " + " | ".join(f"{t} (whole -> pruned)" for t in TABLES) + " |")
    print("|---" * (3 + len(TABLES)) + "|")
    started = time.monotonic()
    for number in range(runs + 1):
        if number in points:
            print(checkpoint(database, folder, number, env, every), flush=True)
        if number < runs:
            run_here(str(config), dry_run=False, channels=None).result()
    spent = time.monotonic() - started
    print(f"\n{runs} runs in {spent:.0f} s ({spent / max(runs, 1):.2f} s a run)", flush=True)


if __name__ == "__main__":
    main()
