"""The temporary Prefect API of one ``carecast run``, which never outlives the run, and starts one at a time.

Prefect starts a temporary server of its own when no API is configured, but a run killed with SIGKILL leaves it
running, and two runs on a fresh Prefect home race its first database migration. This one differs in three ways:

- it watches a pipe whose only writer is the run: when the run ends, however it ends, the kernel closes the pipe,
  the server reads end-of-file and stops;
- it is started under a file lock in Prefect's home and the lock is held until it answers, so the first migration
  runs once while a second run waits, then finds the database ready;
- once the run has ended, it first handles every event the run sent: a task run's states reach Prefect's database
  as events, handled a moment after they arrive, and a server stopped earlier lost the last task runs from the UI
  (and printed the cancelled write's traceback). Then it deletes the runs and events older than Prefect's
  retention (90 days unless the project's prefect.toml says otherwise), which only a server's background services
  would, and a temporary API runs none.

It boots while the run loads Prefect and checks the practice: :func:`start_temporary_api` returns at once, and the
run waits for it only before its flow starts.

Run as ``python -m carecast_flows.server PORT`` by :func:`start_temporary_api`, never by hand.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from filelock import FileLock

from carecast.project import refuse_full_disk

STARTUP_TIMEOUT = 90.0
EVENTS_TIMEOUT = 20.0
STOP_TIMEOUT = EVENTS_TIMEOUT + 10.0  # its events, then Prefect's pruning and uvicorn's shutdown
LOCK_FILE = "carecast-server.lock"


def start_temporary_api(home: Path) -> Callable[[], str]:
    """Start a temporary Prefect API for this process and set ``PREFECT_API_URL`` to it; return at once a function
    that waits until it answers and returns its URL (call it before the first call to the API).

    The server stops when this process exits (at exit, or by itself when the process is killed). Must run before
    Prefect reads its settings. The returned function raises RuntimeError when the server does not answer within
    STARTUP_TIMEOUT, StorageError when it exited because the disk of ``home`` is full.
    """
    home.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()  # neither end is inherited by anything else this process starts
    lock = FileLock(home / LOCK_FILE)
    lock.acquire()  # released once it answers: a second run's server starts on a migrated database
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "carecast_flows.server", str(port)], stdin=read_end)
    os.close(read_end)
    atexit.register(_stop, server, write_end)
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = url

    def ready() -> str:
        try:
            _wait_until_healthy(server, url, home)
        finally:
            lock.release()
        return url

    return ready


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_healthy(server: subprocess.Popen[bytes], url: str, home: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            refuse_full_disk(home)  # the likeliest cause, named (StorageError) rather than a bare exit status
            raise RuntimeError(f"the temporary Prefect server exited with {server.returncode} while starting")
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass  # not listening yet
        time.sleep(0.05)  # a refused connection costs nothing: the run waits no longer than it must
    raise RuntimeError(f"the temporary Prefect server did not answer within {STARTUP_TIMEOUT:g} s")


def _stop(server: subprocess.Popen[bytes], write_end: int) -> None:
    os.close(write_end)  # the server reads end-of-file and shuts down by itself
    try:
        server.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _serve(port: int) -> None:
    import uvicorn
    from prefect.server.api.server import create_app

    def stop_when_the_run_ends() -> None:
        sys.stdin.buffer.read()  # returns at end-of-file: the run that started this server has ended
        try:
            _wait_for_events()
            asyncio.run(_prune_history())
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown (then it exits by the signal)

    threading.Thread(target=stop_when_the_run_ends, daemon=True).start()
    # ephemeral: the API only, without the UI and the background services, as Prefect's own temporary server.
    app = create_app(ephemeral=True, final=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")


def _wait_for_events() -> None:
    """Wait until this server's consumers have handled every event delivered to them (Prefect's in-memory broker
    counts each delivery and each handled one), or EVENTS_TIMEOUT has passed: an event that fails its write
    is retried, and one that never succeeds must not keep the run from ending."""
    from prefect.server.utilities.messaging.memory import METRICS

    deadline = time.monotonic() + EVENTS_TIMEOUT
    while time.monotonic() < deadline:
        if all(counts["consumed"] >= counts["published"] for counts in list(METRICS.values())):
            return
        time.sleep(0.02)


async def _prune_history() -> None:
    """Delete the runs (with their task runs, logs and artifacts) and events older than their retention, by
    Prefect's own vacuum: a temporary API runs none of the server's background services, so without this
    Prefect's database would grow with every run. The retention is Prefect's setting, which the project's
    prefect.toml sets (``[server.services.db_vacuum] retention_period``, 90 days by default; events
    ``[server.events] retention_period``). Runs once the run has ended, before the API stops.
    """
    from prefect.server.database import provide_database_interface
    from prefect.server.services.db_vacuum import vacuum_old_events, vacuum_old_flow_runs

    db = provide_database_interface()
    await vacuum_old_flow_runs(db=db)
    await vacuum_old_events(db=db)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
