"""Where `carecast` keeps Prefect, wherever it is started: the project's prefect.toml (found from the config file)
decides; a run's temporary Prefect server dies with the run, even a killed one; runs on a fresh Prefect home start
their servers one at a time, so Prefect's first migration runs once."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TypeVar

import pytest

from carecast.project import use_project_prefect
from tests.conftest import ROOT, SAMPLE_CONFIG

CARECAST = Path(sys.executable).parent / "carecast"
T = TypeVar("T")


def project(folder: Path) -> Path:
    """A copy of the repository's project (prefect.toml and config/) in ``folder``; its config file."""
    shutil.copytree(SAMPLE_CONFIG, folder / "config")
    shutil.copy(ROOT / "prefect.toml", folder / "prefect.toml")
    return folder / "config" / "carecast.yaml"


def environment(**changes: str | None) -> dict[str, str]:
    """This process's environment without any Prefect API or home (as on a fresh shell), with ``changes``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update({key: value for key, value in changes.items() if value is not None})
    return env


def test_the_project_prefect_toml_is_found_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project(tmp_path / "practice")
    for name in ("PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_LOGGING_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")  # the environment wins, as in Prefect
    monkeypatch.chdir(tmp_path)
    use_project_prefect(config)
    assert Path(os.environ["PREFECT_HOME"]).resolve() == (tmp_path / "practice" / ".carecast" / "prefect").resolve()
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"  # telemetry stays off
    assert os.environ["PREFECT_LOGGING_LEVEL"] == "DEBUG"


def test_without_a_prefect_toml_the_home_is_the_projects_carecast_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(SAMPLE_CONFIG, tmp_path / "config")
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    use_project_prefect(tmp_path / "config" / "carecast.yaml")
    assert Path(os.environ["PREFECT_HOME"]) == tmp_path / ".carecast" / "prefect"


def test_a_run_started_elsewhere_keeps_prefect_in_the_project(tmp_path: Path) -> None:
    config = project(tmp_path / "practice")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run(
        [CARECAST, "run", "--config", str(config)],
        cwd=elsewhere,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    database = tmp_path / "practice" / ".carecast" / "prefect" / "prefect.db"
    assert list(elsewhere.iterdir()) == []
    # every task run is in Prefect's UI, completed: its states arrive as events, which the temporary server
    # handles before it stops (stopped earlier, the last ones were lost); every task logs, and logs are written
    # as they are posted, so the logs name every task run the flow ran
    with closing(sqlite3.connect(database)) as db:
        logged = {row[0] for row in db.execute("SELECT task_run_id FROM log WHERE task_run_id IS NOT NULL")}
        recorded = dict(db.execute("SELECT id, state_type FROM task_run").fetchall())
    assert logged
    assert recorded == dict.fromkeys(logged, "COMPLETED")


def test_a_killed_run_leaves_no_prefect_server_behind(tmp_path: Path) -> None:
    config = project(tmp_path / "practice")
    log = tmp_path / "run.log"
    with log.open("wb") as output:
        run = subprocess.Popen(
            [CARECAST, "run", "--config", str(config)], env=environment(), stdout=output, stderr=output
        )
    try:
        _wait_for(lambda: "Beginning flow run" in log.read_text(errors="replace"), "the flow run")
        children = _children(run.pid)  # the temporary Prefect server, however it was started
        assert children
        run.send_signal(signal.SIGKILL)
        run.wait()
        _wait_for(lambda: not any(_alive(child) for child in children), "the server to stop after the run was killed")
    finally:
        run.kill()
        run.wait()


def test_two_runs_on_a_fresh_prefect_home_do_not_race_its_first_migration(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"  # shared by both, fresh
    runs = [
        subprocess.Popen(
            [CARECAST, "run", "--config", str(project(tmp_path / name))],
            env=environment(PREFECT_HOME=str(home)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        assert "Traceback" not in out + err


def _wait_for(check: Callable[[], T], what: str, timeout: float = 120) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def _children(parent: int) -> list[int]:
    """The processes whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
        except OSError:
            continue  # it ended meanwhile
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie waiting for init to reap it has stopped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
