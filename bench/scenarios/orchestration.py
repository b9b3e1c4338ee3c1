"""Orchestration scenarios: the whole ``carecast run`` command and a served publish run, against the core
pipeline alone without Prefect.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, ClassVar

from bench.scenarios.base import (
    ROOT,
    Scenario,
)


def core_run(config: str, channel: str | None = None) -> None:
    """The pipeline of ``carecast run`` through the core alone, no Prefect: what the flow orchestrates, in order;
    with ``channel``, what a publish run of that channel does (adapt, expire, publish) and nothing else."""
    from carecast import pipeline
    from carecast.practice import open_practice

    with open_practice(config) as practice:
        settings, ledger = practice.settings, practice.ledger
        if channel is None:
            pipeline.sync_audience(settings, ledger)
            for source in settings.sources:
                pipeline.ingest(settings, ledger, source)
        for name in pipeline.channel_names(settings, None if channel is None else [channel]):
            pipeline.adapt(settings, ledger, name)
            pipeline.expire_late_drafts(settings, ledger, name)
            pipeline.publish(settings, ledger, name)


def timed_command(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> dict[str, float]:
    """Run ``command`` to its end (it must succeed), its output appended to ``log``; the peak memory of it and its
    children, waited for."""
    import resource
    import subprocess

    with log.open("ab") as output:
        subprocess.run(command, env=env, cwd=cwd, check=True, stdout=output, stderr=output)
    return {"peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


class RunNothingNew(Scenario):
    """``carecast run`` with nothing new, the whole command: the sample practice (its sources, every enabled channel,
    to the outbox) right after a first run. Since issue 24's fifth stop the command polls the sources and asks the
    ledger before Prefect loads, and finding nothing to do it ends there (no temporary Prefect API, no flow run); the
    first run, which has work, starts them."""

    name = "run-nothing-new"
    unit = "run"
    sizes: ClassVar[dict[str, int]] = {"full": 1, "default": 1, "quick": 1}
    baseline_says = "the core pipeline alone, no Prefect (python -c, imports included)"
    preload = ()
    #: The channel the baseline works on; None: every channel and source, as ``carecast run``.
    channel: ClassVar[str | None] = None

    def prepare(self, feeds: dict[str, bytes]) -> None:
        self.write_config({})
        shutil.copy(ROOT / "prefect.toml", self.workdir)  # a project's: Prefect's home in it, no telemetry
        self.start_server()
        self.carecast()  # the first run (and Prefect's home made): what the timed ones find already done
        self.save_template()

    def start_server(self) -> None:
        """Nothing: the run starts its own API."""

    def environment(self) -> dict[str, str]:
        """The command's environment: no Prefect API configured (the run starts its own), and Python's compiled
        modules kept (as an installation has them: the untimed first run writes them), or every run would compile
        CareCast's own source again."""
        return {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PREFECT_") and key != "PYTHONDONTWRITEBYTECODE"
        }

    def carecast(self) -> dict[str, float]:
        carecast = [str(Path(sys.executable).with_name("carecast")), "run", "--config", str(self.config_file())]
        return timed_command(carecast, self.environment(), self.workdir, self.workdir / "carecast.log")

    def baseline(self) -> dict[str, float]:
        script = f"from bench.scenarios import core_run; core_run({str(self.config_file())!r}, {self.channel!r})"
        return timed_command([sys.executable, "-c", script], self.environment(), ROOT, self.workdir / "baseline.log")


class RunNothingNewReview(RunNothingNew):
    """The same, the practice's newsletter under review (``approval: review``): after the first run its issue waits
    for approval, as it does all week until staff approve it (before issue 24's sixth stop, every run then started
    Prefect to render the issue again)."""

    name = "run-nothing-new-review"

    def write_config(self, changes: dict[str, Any]) -> Path:
        return super().write_config({"channels": {"newsletter": {"approval": "review"}}} | changes)


class RunOneNew(RunNothingNew):
    """``carecast run`` once the blog's feed (served by the bench's feed host) has gained one post: the whole
    command, its look (one request per feed), the temporary API and the flow, which drafts and publishes the post
    on every channel taking blog posts. Each run starts from the ledger of the run before the post."""

    name = "run-one-new"

    def prepare(self, feeds: dict[str, bytes]) -> None:
        path = f"/{self.name}/blog.xml"
        sample = (ROOT / "config" / "samples" / "oakview-blog.xml").read_bytes()
        newest = re.search(rb"<item>.*?</item>\s*", sample, re.DOTALL)
        assert newest is not None
        feeds[path] = sample[: newest.start()] + sample[newest.end() :]
        blog = {"url": f"{self.servers.feed_url}{path}", "allow_private": True}
        self.write_config({"sources": {"blog": blog}})
        shutil.copy(ROOT / "prefect.toml", self.workdir)
        self.carecast()  # the first run: what the timed ones find done, but for the post
        self.save_template()
        feeds[path] = sample  # the post appears (a new ETag)


class RunNothingNewServed(RunNothingNew):
    """The same, against a Prefect server already running (``prefect server start``, once, before the runs)."""

    name = "run-nothing-new-served"
    baseline_says = "the core pipeline alone, no Prefect (python -c, imports included)"

    def start_server(self) -> None:
        from tests.prefect_server import start_prefect

        home = self.workdir / "server"
        home.mkdir()
        server = self._server.enter_context(start_prefect(home, PREFECT_SERVER_UI_ENABLED="false"))
        (self.workdir / "api.url").write_text(server.env["PREFECT_API_URL"])

    def environment(self) -> dict[str, str]:
        return super().environment() | {"PREFECT_API_URL": (self.workdir / "api.url").read_text()}

    def cleanup(self) -> None:
        self._server.close()

    @functools.cached_property
    def _server(self) -> ExitStack:
        return ExitStack()


class PublishServed(RunNothingNewServed):
    """A served publish run with nothing due: ``carecast serve`` running the practice's deployments against the
    server, the ``publish`` deployment of X started through the API and waited for until it completes (the runner
    polls each second and starts the run in a process of its own)."""

    name = "publish-served"
    baseline_says = "the core adapt, expire and publish of X alone, no Prefect (python -c, imports included)"
    channel = "x"

    def start_server(self) -> None:
        from carecast.practice import load_settings
        from tests.prefect_server import PrefectServer, start_carecast_serve, start_prefect

        core_run(str(self.config_file()))  # what a first run leaves: items, drafts, publications
        home = self.workdir / "server"
        home.mkdir()
        server = self._server.enter_context(start_prefect(home, PREFECT_SERVER_UI_ENABLED="false"))
        # The flow runs' processes keep compiled modules, as an installation's (see RunNothingNew.environment).
        kept = {key: value for key, value in server.env.items() if key != "PYTHONDONTWRITEBYTECODE"}
        self._server.enter_context(start_carecast_serve(self.config_file(), PrefectServer(kept, server.process)))
        deployment = server.api.deployment("publish", f"{load_settings(self.config_file()).slug}-x")
        (self.workdir / "api.url").write_text(server.env["PREFECT_API_URL"])
        (self.workdir / "deployment").write_text(str(deployment["id"]))

    def carecast(self) -> dict[str, float]:
        import requests

        api = (self.workdir / "api.url").read_text()
        deployment = (self.workdir / "deployment").read_text()
        for _ in range(20):  # Prefect's SQLite answers 503 (database locked) while the runner polls it: try again
            answer = requests.post(f"{api}/deployments/{deployment}/create_flow_run", json={}, timeout=10)
            if answer.status_code != 503:
                break
            time.sleep(0.25)
        assert answer.status_code == 201, f"create_flow_run answered {answer.status_code}: {answer.text[:300]}"
        run = answer.json()
        while True:
            state = requests.get(f"{api}/flow_runs/{run['id']}", timeout=10).json()["state"]
            if state["type"] == "COMPLETED":
                return {}
            assert state["type"] not in ("FAILED", "CRASHED", "CANCELLED"), state
            time.sleep(0.05)
