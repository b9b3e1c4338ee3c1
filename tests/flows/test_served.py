"""``carecast serve`` against a real ``prefect server`` process: deployments, runs through the API, approvals.

One server for the session (its own PREFECT_HOME and SQLite under a temporary folder, its scheduler off so that
only the API starts runs), and one ``carecast serve`` process for this module's practice. The tests share that
practice's ledger and run in file order: ingest first, then each channel.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, update

from carecast.config import load_settings
from carecast.ledger import DraftRow, Ledger
from carecast.model import now_utc
from tests.conftest import write_config

pytestmark = pytest.mark.prefect

BIN = Path(sys.executable).parent
STARTUP = 90.0
RUN_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(what: str, check: Any, timeout: float, process: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}")
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real ``prefect server start`` on a free port; yields the environment that points at it."""
    home = tmp_path_factory.mktemp("prefect-server")
    url = f"http://127.0.0.1:{free_port()}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home / "home"),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    port = url.split(":")[2].split("/")[0]
    with (home / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
            cwd=home,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for("the Prefect server's health check", lambda: _healthy(url), STARTUP, server)
            yield env
        finally:
            stop(server)


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).ok
    except requests.ConnectionError:
        return False


def api(method: str, path: str, env: dict[str, str], body: Any = None) -> Any:
    """One API call; a 503 (SQLite busy under a loaded machine) is tried again for up to 30 s."""
    deadline = time.monotonic() + 30
    while True:
        response = requests.request(method, env["PREFECT_API_URL"] + path, json=body or {}, timeout=10)
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(1)
    response.raise_for_status()
    return response.json() if response.content else None


@pytest.fixture(scope="module")
def practice(prefect_server: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The sample practice with X and SMS under review (X on no schedule), served by ``carecast serve``."""
    project = tmp_path_factory.mktemp("served")
    config = write_config(
        project, {"channels": {"x": {"approval": "review", "schedule": []}, "sms": {"approval": "review"}}}
    )
    with (project / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            [str(BIN / "carecast"), "serve", "--config", str(config)],
            cwd=project,
            env=prefect_server,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            expected = 1 + sum(channel.enabled for channel in load_settings(config).channels.values())
            wait_for(
                "the deployments",
                lambda: len(api("POST", "/deployments/filter", prefect_server)) >= expected,
                60,
                serve,
            )
            yield config
        finally:
            stop(serve)  # serve before the server: the session fixture outlives this one


def deployment(env: dict[str, str], flow: str, name: str) -> dict[str, Any]:
    return dict(api("GET", f"/deployments/name/{flow}/{name}", env))


def start(env: dict[str, str], flow: str, name: str, **parameters: Any) -> str:
    found = deployment(env, flow, name)
    run = api("POST", f"/deployments/{found['id']}/create_flow_run", env, {"parameters": parameters})
    return str(run["id"])


def state_of(env: dict[str, str], run_id: str) -> dict[str, Any]:
    return dict(api("GET", f"/flow_runs/{run_id}", env)["state"])


def finished(env: dict[str, str], run_id: str, wanted: str = "COMPLETED") -> dict[str, Any]:
    """Wait for the run to reach ``wanted``; fail at once on another final state, with its message."""

    def check() -> dict[str, Any] | None:
        state = state_of(env, run_id)
        if state["type"] == wanted:
            return state
        if state["type"] in ("FAILED", "CRASHED", "CANCELLED"):
            raise AssertionError(f"run {run_id}: {state['type']}: {state['message']}")
        return None

    return dict(wait_for(f"run {run_id} {wanted.lower()}", check, RUN_TIMEOUT))


def flow_run(env: dict[str, str], run_id: str) -> dict[str, Any]:
    return dict(api("GET", f"/flow_runs/{run_id}", env))


def outbox(config: Path, channel: str) -> list[Path]:
    folder = load_settings(config).path("../.carecast/outbox") / channel
    return sorted(folder.glob("*")) if folder.is_dir() else []


def test_one_deployment_per_job_with_zoned_schedules_and_parameters(
    prefect_server: dict[str, str], practice: Path
) -> None:
    sources = deployment(prefect_server, "ingest", "oakview-pt-sources")
    assert [s["schedule"]["interval"] for s in sources["schedules"]] == [30 * 60.0]
    newsletter = deployment(prefect_server, "publish", "oakview-pt-newsletter")
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in newsletter["schedules"]] == [
        ("0 10 * * TUE", "America/Chicago")
    ]
    assert newsletter["parameters"] == {"practice": str(practice.resolve()), "channels": ["newsletter"]}
    properties = newsletter["parameter_openapi_schema"]["properties"]
    assert set(properties) == {"practice", "channels", "items", "dry_run"}
    assert properties["dry_run"]["type"] == "boolean"
    assert all(properties[name]["description"] for name in properties)
    sms = deployment(prefect_server, "publish", "oakview-pt-sms")
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in sms["schedules"]] == [
        ("0 11 * * MON#1", "America/Chicago")
    ]
    assert deployment(prefect_server, "publish", "oakview-pt-x")["schedules"] == []


def test_a_run_started_through_the_api_reads_sources_then_publishes(
    prefect_server: dict[str, str], practice: Path
) -> None:
    finished(prefect_server, start(prefect_server, "ingest", "oakview-pt-sources"))
    run_id = start(prefect_server, "publish", "oakview-pt-newsletter")
    finished(prefect_server, run_id)
    assert [path.suffix for path in outbox(practice, "newsletter")] == [".eml"]
    assert flow_run(prefect_server, run_id)["name"] == "publish newsletter: 1 post"
    keys = {
        a["key"]
        for a in api("POST", "/artifacts/filter", prefect_server, {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    }
    assert {"oakview-pt-published", "oakview-pt-calendar", "oakview-pt-newsletter-newsletter"} <= keys


def test_a_run_paused_for_approval_publishes_only_what_staff_approved(
    prefect_server: dict[str, str], practice: Path
) -> None:
    settings = load_settings(practice)
    ledger = Ledger(settings.ledger_url())
    waiting = ledger.drafts("x", states=["pending"])
    assert len(waiting) == 3
    run_id = start(prefect_server, "publish", "oakview-pt-x")
    paused = finished(prefect_server, run_id, "PAUSED")
    assert paused["name"] == "Suspended"
    kept, edited, refused = waiting
    run_input = {
        f"draft_{kept.id}": {"decision": "approve", "text": kept.draft.parts[0]},
        f"draft_{edited.id}": {"decision": "approve", "text": "Edited in the Prefect UI."},
        f"draft_{refused.id}": {"decision": "reject", "text": refused.draft.parts[0], "reason": "not this week"},
    }
    api("POST", f"/flow_runs/{run_id}/resume", prefect_server, {"run_input": run_input})
    finished(prefect_server, run_id)
    assert flow_run(prefect_server, run_id)["name"] == "publish x: 2 posts"
    bodies = [path.read_text() for path in outbox(practice, "x")]
    assert len(bodies) == 2 and any("Edited in the Prefect UI." in body for body in bodies)
    states = {stored.id: stored.state for stored in ledger.drafts("x")}
    assert states[refused.id] == "rejected"
    assert {stored.channel for stored in ledger.drafts(states=["pending"])} <= {"sms"}
    ledger.close()


def test_a_draft_left_unapproved_past_its_slot_expires_and_is_never_sent(
    prefect_server: dict[str, str], practice: Path
) -> None:
    settings = load_settings(practice)
    ledger = Ledger(settings.ledger_url())
    (pending,) = ledger.drafts("sms", states=["pending"])
    # Drafted 40 days ago: its first-Monday slot (and the 15 minutes late policy skip allows) are long past.
    engine = create_engine(settings.ledger_url())
    with engine.begin() as connection:
        connection.execute(
            update(DraftRow).where(DraftRow.id == pending.id).values(created_at=now_utc() - timedelta(days=40))
        )
    engine.dispose()
    run_id = start(prefect_server, "publish", "oakview-pt-sms")
    finished(prefect_server, run_id)
    assert flow_run(prefect_server, run_id)["name"] == "publish sms: 0 posts"
    (expired,) = ledger.drafts("sms", states=["expired"])
    assert expired.id == pending.id and expired.reason and "not approved by" in expired.reason
    assert outbox(practice, "sms") == []
    assert all(record.channel != "sms" for record in ledger.publications())
    ledger.close()
