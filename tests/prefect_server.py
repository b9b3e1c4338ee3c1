"""A real ``prefect server start`` and ``carecast serve`` as child processes, and the few Prefect REST calls that
drive runs through them.

For tests/flows/test_served.py and for docs/screenshots.py (run from the repo root as ``python -m
docs.screenshots``, which puts the root, and so this package, on the import path); never for carecast/, channels/
or flows/. Each server listens on a free 127.0.0.1 port with its own PREFECT_HOME (never ~/.prefect); each process
is stopped when its ``with`` block ends, whatever happened.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests

from carecast.practice import load_settings

BIN = Path(sys.executable).parent
STARTUP = 90.0
#: How long a run may take to reach the state a caller waits for, unless it says otherwise.
RUN_TIMEOUT = 120.0
FAILED = ("FAILED", "CRASHED", "CANCELLED")

T = TypeVar("T")


class NotReached(AssertionError):
    """A process exited, a wait ran out, or a run ended in another final state; the message says which."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process``; kill it when it is still there after 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(
    what: str, check: Callable[[], T | None], timeout: float, process: subprocess.Popen[bytes] | None = None
) -> T:
    """Poll ``check`` every half second until it returns something truthy, and return that.

    Raises NotReached when ``process`` exits first or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NotReached(f"{what}: the process exited with {process.returncode}")
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise NotReached(f"{what}: not within {timeout:.0f} s")


@dataclass(frozen=True)
class Api:
    """The Prefect REST calls the served tests and the screenshots need, at ``url`` (``PREFECT_API_URL``)."""

    url: str

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        """One call; a 503 (SQLite busy under a loaded machine) is tried again for up to 30 s.

        Raises requests.HTTPError on any other error status.
        """
        deadline = time.monotonic() + 30
        while True:
            response = requests.request(method, self.url + path, json=body or {}, timeout=10)
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(1)
        response.raise_for_status()
        return response.json() if response.content else None

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=2).ok
        except requests.ConnectionError:
            return False

    def deployment(self, flow: str, name: str) -> dict[str, Any]:
        return dict(self("GET", f"/deployments/name/{flow}/{name}"))

    def start(self, flow: str, name: str) -> str:
        """Start a run of the deployment with its own parameters; returns the run's id."""
        run = self("POST", f"/deployments/{self.deployment(flow, name)['id']}/create_flow_run")
        return str(run["id"])

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return dict(self("GET", f"/flow_runs/{run_id}"))

    def finished(
        self,
        run_id: str,
        wanted: str = "COMPLETED",
        process: subprocess.Popen[bytes] | None = None,
        timeout: float = RUN_TIMEOUT,
    ) -> dict[str, Any]:
        """Wait for the run to reach the state type ``wanted``; returns that state.

        Raises NotReached at once when the run fails, crashes or is cancelled instead (with the state's message),
        when ``process`` exits, or when ``timeout`` seconds pass.
        """

        def check() -> dict[str, Any] | None:
            state = dict(self.flow_run(run_id)["state"])
            if state["type"] == wanted:
                return state
            if state["type"] in FAILED:
                raise NotReached(f"run {run_id}: {state['type']}: {state['message']}")
            return None

        return wait_for(f"run {run_id} {wanted.lower()}", check, timeout, process)

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """The artifacts the run created."""
        return list(self("POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}}))


@dataclass(frozen=True)
class PrefectServer:
    """A running server: the environment that points a client at it, and its process."""

    env: dict[str, str]
    process: subprocess.Popen[bytes]

    @property
    def api(self) -> Api:
        return Api(self.env["PREFECT_API_URL"])


@contextmanager
def start_prefect(home: Path, **settings: str) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free port, with PREFECT_HOME in ``home/prefect`` and its log in
    ``home/server.log``; yielded once its health check answers.

    ``settings`` are more environment variables for the server and the clients given its ``env``, e.g.
    ``PREFECT_SERVER_UI_ENABLED="false"``. Raises NotReached when the server exits or is not healthy in time.
    """
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        **settings,
    }
    with (home / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=home,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            server = PrefectServer(env, process)
            wait_for("the Prefect server's health check", server.api.healthy, STARTUP, process)
            yield server
        finally:
            stop(process)


@contextmanager
def start_carecast_serve(config: Path, server: PrefectServer) -> Iterator[subprocess.Popen[bytes]]:
    """``carecast serve --config config`` against ``server``, in the project folder that holds config/ (its log
    there, in serve.log); yielded once every enabled channel's deployment and the ingest, resolve, metrics and report
    ones are registered (and so the practice's failure automation, registered first), whatever other practices the
    server holds.

    Raises NotReached when ``carecast serve`` exits or its deployments are not all there within 120 s.
    """
    from carecast_flows.deployments import practice_tag  # Prefect loads slowly: only for callers that serve

    project = config.parent.parent
    with (project / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            [str(BIN / "carecast"), "serve", "--config", str(config)],
            cwd=project,
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            settings = load_settings(config)
            # ingest, resolve, review, metrics, report
            expected = 5 + sum(channel.enabled for channel in settings.channels.values())
            tagged = {"deployments": {"tags": {"all_": [practice_tag(settings)]}}}
            api = server.api
            wait_for("the deployments", lambda: len(api("POST", "/deployments/filter", tagged)) >= expected, 240, serve)
            yield serve
        finally:
            stop(serve)
