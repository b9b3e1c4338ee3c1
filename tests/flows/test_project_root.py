"""One project, one ledger and one outbox, wherever CareCast is started: ``carecast run/status/drafts/approve``
from the project root, from ``config/`` with a relative ``--config``, from another folder with an absolute one, and
a worker's flow run in a folder of its own all find the same ledger (the sample's relative
``sqlite:///.carecast/ledger.db``, under the project root) and the same outbox; a second run from any of them
publishes nothing. A run that would start a new ledger beside an earlier one's outbox is refused.

Each test works on a copy of the sample project (prefect.toml and config/) in a temporary folder, never the
repository's own; runs are real ``carecast`` processes against the session's Prefect server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, SAMPLE_CONFIG
from tests.prefect_server import BIN, PrefectServer

pytestmark = pytest.mark.prefect

RUN_TIMEOUT = 240.0


@dataclass
class Project:
    """A copy of the sample project (``folder/prefect.toml``, ``folder/config/``) and the environment to run in."""

    folder: Path
    env: dict[str, str]

    @property
    def config(self) -> Path:
        return self.folder / "config" / "carecast.yaml"

    @property
    def outbox(self) -> Path:
        return self.folder / ".carecast" / "outbox"

    def carecast(self, cwd: Path, config: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
        """``carecast ARGS --config CONFIG`` started in ``cwd``."""
        return subprocess.run(
            [str(BIN / "carecast"), *args, "--config", str(config)],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )

    def sent(self) -> dict[str, bytes]:
        """Every file in the outbox, by its path in it."""
        return {
            str(path.relative_to(self.outbox)): path.read_bytes() for path in self.outbox.rglob("*") if path.is_file()
        }

    def publications(self, cwd: Path, config: Path | str) -> list[int]:
        status = self.carecast(cwd, config, "status", "--json")
        assert status.returncode == 0, status.stderr
        return [record["id"] for record in json.loads(status.stdout)]


def copy_project(folder: Path, env: dict[str, str]) -> Project:
    """The sample project in ``folder``, its X channel waiting for approval (so ``drafts`` and ``approve`` have
    work)."""
    shutil.copytree(SAMPLE_CONFIG, folder / "config")
    shutil.copy(ROOT / "prefect.toml", folder / "prefect.toml")
    project = Project(folder, env)
    data = yaml.safe_load(project.config.read_text())
    data["channels"]["x"]["approval"] = "review"
    project.config.write_text(yaml.safe_dump(data, sort_keys=False))
    return project


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, prefect_server: PrefectServer) -> Iterator[Project]:
    """The project after a first run from its root, with the relative config path staff type there."""
    project = copy_project(tmp_path_factory.mktemp("project"), {**prefect_server.env})
    first = project.carecast(project.folder, "config/carecast.yaml", "run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert project.sent(), "the first run published to the outbox"
    assert (project.folder / ".carecast" / "ledger.db").is_file()
    yield project


def elsewhere(project: Project) -> Path:
    folder = project.folder.parent / f"{project.folder.name}-elsewhere"
    folder.mkdir(exist_ok=True)
    return folder


#: Where a command is started, and the --config it is given there.
PLACES = {
    "project root": lambda project: (project.folder, "config/carecast.yaml"),
    "config folder": lambda project: (project.folder / "config", "carecast.yaml"),
    "another folder": lambda project: (elsewhere(project), project.config.resolve()),
}


@pytest.mark.parametrize("place", PLACES)
def test_every_command_from_anywhere_uses_the_one_ledger_and_outbox(published: Project, place: str) -> None:
    cwd, config = PLACES[place](published)
    before_files, before = published.sent(), published.publications(published.folder, "config/carecast.yaml")

    check = published.carecast(cwd, config, "check")
    assert check.returncode == 0, check.stderr
    assert f"ledger: sqlite:///{published.folder.resolve() / '.carecast' / 'ledger.db'}" in check.stdout
    assert f"outbox: {published.outbox.resolve()}" in check.stdout

    again = published.carecast(cwd, config, "run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert published.sent() == before_files, "a second run publishes nothing"
    assert published.publications(cwd, config) == before

    pending = published.carecast(cwd, config, "drafts")
    assert pending.returncode == 0, pending.stderr
    waiting = drafts(pending.stdout)
    assert "x" in waiting.values(), "the X drafts wait for approval"

    # Nothing was made where the command was started.
    assert not (published.folder / "config" / ".carecast").exists()
    assert list(elsewhere(published).iterdir()) == []


def drafts(table: str) -> dict[str, str]:
    """The drafts of a ``carecast drafts`` table (every line under the header and its rule): id -> channel."""
    rows = [line.split() for line in table.splitlines()[2:] if line.strip()]
    return {row[0]: row[1] for row in rows}


WORKER = """
import os
import sys
from pathlib import Path
from carecast_flows.deployments import deployments
from carecast_flows.pipeline import publish

# Registered where `carecast serve --config carecast.yaml` is started; run where the worker is.
[deployment] = [d for d in deployments(Path(sys.argv[1])) if d.name.endswith("-newsletter")]
os.chdir(sys.argv[2])
publish(**deployment.parameters)
"""


def test_a_worker_in_another_folder_uses_the_same_ledger_and_outbox(published: Project) -> None:
    """A deployment registered from ``config/`` with a relative path, its flow run by a process (as a process
    worker starts it) whose working folder is elsewhere."""
    before_files, before = published.sent(), published.publications(published.folder, "config/carecast.yaml")
    worker = elsewhere(published)
    run = subprocess.run(
        [str(BIN / "python"), "-c", WORKER, "carecast.yaml", str(worker)],
        cwd=published.folder / "config",
        env=published.env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert published.sent() == before_files
    assert published.publications(worker, published.config.resolve()) == before
    assert list(worker.iterdir()) == []
    assert not (published.folder / "config" / ".carecast").exists()


def test_a_new_ledger_beside_an_earlier_outbox_is_refused_unless_asked_for(
    tmp_path: Path, prefect_server: PrefectServer
) -> None:
    project = copy_project(tmp_path / "project", {**prefect_server.env})
    earlier = project.outbox / "x" / "2026-11-30-post.txt"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("sent by a run on another ledger\n")

    refused = project.carecast(project.folder / "config", "carecast.yaml", "run")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "ledger.url: a new, empty ledger would be created at" in refused.stderr
    assert "--new-ledger" in refused.stderr and "Traceback" not in refused.stderr
    assert not (project.folder / ".carecast" / "ledger.db").exists()
    assert project.sent() == {"x/2026-11-30-post.txt": b"sent by a run on another ledger\n"}

    meant = project.carecast(project.folder / "config", "carecast.yaml", "run", "--new-ledger")
    assert meant.returncode == 0, meant.stdout + meant.stderr
    assert (project.folder / ".carecast" / "ledger.db").is_file()
    again = project.carecast(project.folder, "config/carecast.yaml", "run")
    assert again.returncode == 0, again.stdout + again.stderr  # the ledger exists now: no refusal


def test_approve_from_anywhere_approves_in_the_one_ledger(published: Project) -> None:
    """After the runs (an approved draft is published by the next run): each place approves one draft, and every
    other place sees it approved."""
    pending = published.carecast(published.folder, "config/carecast.yaml", "drafts")
    ids = list(drafts(pending.stdout))
    assert len(ids) >= len(PLACES)
    for draft_id, place in zip(ids, PLACES, strict=False):
        cwd, config = PLACES[place](published)
        approve = published.carecast(cwd, config, "approve", draft_id)
        assert approve.returncode == 0, approve.stderr
    for place in PLACES:
        cwd, config = PLACES[place](published)
        approved = published.carecast(cwd, config, "drafts", "--state", "approved")
        assert approved.returncode == 0, approved.stderr
        assert set(ids[: len(PLACES)]) <= set(drafts(approved.stdout))
    assert list(elsewhere(published).iterdir()) == []
    assert not (published.folder / "config" / ".carecast").exists()
