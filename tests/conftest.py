"""Fixtures shared by the whole suite: a copy of the sample config in a temporary folder, real ledgers on SQLite
and PostgreSQL, and one Prefect API for the session (the temporary server Prefect starts; its home is the
project's .carecast/prefect, set by prefect.toml, never ~/.prefect)."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CONFIG = ROOT / "config"
# Prefect's home is the project's .carecast/prefect (prefect.toml), whatever folder pytest runs from: never
# ~/.prefect. It is set before anything imports Prefect, and its parent must exist.
(ROOT / ".carecast").mkdir(exist_ok=True)
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".carecast" / "prefect"))
POSTGRES_ADMIN = os.environ.get("CARECAST_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


# The system's temporary folder as it was when the session started: a test leaves nothing behind there.
TMP = Path(tempfile.gettempdir())
_TMP_BEFORE: set[str] = set()
#: Every temporary file of the session, in one folder removed at exit. Outside the project on purpose: a test's
#: project must not find this repository's prefect.toml or pyproject.toml above it.
SESSION = TMP / f"carecast-tests-{os.getpid()}"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """The session's temporary files live in :data:`SESSION`, removed at exit: pytest's tmp_path folders (pytest
    keeps the last three sessions' otherwise), and, through TMPDIR, what this process and every process it starts
    (Chromium, Prefect's workers and runners, provider fakes) put in a temporary folder."""
    _TMP_BEFORE.update(os.listdir(TMP))
    _TMP_BEFORE.add(SESSION.name)
    (SESSION / "tmp").mkdir(parents=True, exist_ok=True)
    # Readable by others: a test runs PostgreSQL as the postgres user in a folder of its own under it.
    for folder in (SESSION, SESSION / "tmp"):
        folder.chmod(0o755)
    os.environ["TMPDIR"] = str(SESSION / "tmp")
    tempfile.tempdir = None  # read TMPDIR again
    if config.option.basetemp is None:
        config.option.basetemp = str(SESSION / "basetemp")
    # At exit, after Prefect's own exit handlers (registered later, run earlier) have stopped its temporary server.
    atexit.register(shutil.rmtree, SESSION, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Whatever the suite left in /tmp is named; under CI (CI=true, where nothing else runs) it fails the run."""
    left = sorted(set(os.listdir(TMP)) - _TMP_BEFORE)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"left in {TMP} by this session: {', '.join(left[:20])}", red=True)
    if os.environ.get("CI") == "true" and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def shared_corpus(*parts: str) -> Path:
    """A path in ../shared/corpus (CI clones the repo beside shared/; CARECAST_SHARED may point elsewhere)."""
    base = Path(os.environ.get("CARECAST_SHARED", ROOT.parent / "shared"))
    return base.joinpath("corpus", *parts)


def write_config(project: Path, changes: dict | None = None) -> Path:
    """Copy the sample config into ``project/config``, apply ``changes`` (nested keys merged), return the file."""
    target = project / "config"
    shutil.copytree(SAMPLE_CONFIG, target)
    file = target / "carecast.yaml"
    data = yaml.safe_load(file.read_text())
    _merge(data, changes or {})
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    return file


def commented_channels(file: Path = SAMPLE_CONFIG / "carecast.yaml") -> dict:
    """The channel sections the sample config holds commented out (``  # name:`` and the ``  #   key: value`` lines
    under it), as write_config's ``changes`` take them: ``{"channels": {name: section}}``."""
    lines = []
    for line in file.read_text(encoding="utf-8").splitlines():
        if re.match(r"^  # [a-z_]+:\s*$", line) or (lines and re.match(r"^  #   ", line)):
            lines.append(line[:2] + line[4:])
    return {"channels": yaml.safe_load("\n".join(lines)) or {}}


def _merge(data: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            _merge(data[key], value)
        elif value is None:
            data.pop(key, None)
        else:
            data[key] = value


def all_channels_config(project: Path, changes: dict | None = None) -> Path:
    """``write_config`` with every channel the sample config holds commented out enabled and LinkedIn approved
    automatically, then ``changes`` applied."""
    sample = commented_channels()
    # LinkedIn is enabled in the sample, under review (so a newcomer sees the review form); here it publishes too.
    _merge(sample, {"channels": {"linkedin": {"approval": "auto"}}})
    _merge(sample, changes or {})
    return write_config(project, sample)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@contextmanager
def fresh_ledger(dialect: str, folder: Path) -> Iterator[str]:
    """The URL of a fresh, empty ledger database: a SQLite file in ``folder``, or a new PostgreSQL database
    dropped afterwards."""
    if dialect == "sqlite":
        yield f"sqlite:///{folder / 'ledger.db'}"
        return
    with fresh_database("test") as url:
        yield url


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A new database ``carecast_<kind>_<random>`` on the shared PostgreSQL server (never restarted), dropped
    afterwards with whatever still holds it; yields its psycopg URL."""
    from sqlalchemy import create_engine, text

    name = f"carecast_{kind}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger database: a SQLite file, and a new PostgreSQL database dropped afterwards."""
    with fresh_ledger(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One real Prefect API for every flow test of the session (Prefect's home is .carecast/prefect: prefect.toml)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60), temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
