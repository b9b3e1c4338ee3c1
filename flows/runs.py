"""What every CareCast flow run does around its work: the rows it reports, its name, its end state (Failed, which
notifies, naming what failed, stopped or is held), a graceful stop on SIGTERM, and a console that may go away.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed, State
from rich.console import Console

from carecast.channel import CREDENTIAL_TO_FIX, STOPPED
from carecast_flows.notify import notify_failure

Row = dict[str, Any]


def _name_run(name: str) -> None:
    """Rename the current flow run after the fact, to say what it did.

    Task runs keep their templates ("publish x"): Prefect records them through events, so one may not exist in
    the API yet when it ends; what each did is in its log.
    """
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        with get_client(sync_client=True) as client:
            client.set_flow_run_name(context.flow_run.id, name)


def _counted(rows: list[Row], nothing: str) -> str:
    states = Counter(row["state"] for row in rows)
    return ", ".join(f"{n} {state}" for state, n in states.items()) or nothing


#: Set by SIGTERM while this process publishes (``carecast serve`` shutting down, or the run cancelled).
SHUTDOWN = threading.Event()


@contextmanager
def _stop_gracefully() -> Iterator[threading.Event]:
    """While the block runs, SIGTERM sets ``SHUTDOWN`` instead of raising wherever the code is (Prefect's handler):
    the send in hand finishes and records its recipient or part, the rest is left for the next run, and the run
    ends Failed saying so (which notifies). If the process is not done within the runner's grace period it is
    killed, and the claim it leaves is resumed by a later run."""
    if threading.current_thread() is not threading.main_thread():
        yield SHUTDOWN  # signals reach the main thread only; there Prefect's own handling stays
        return
    previous = signal.signal(signal.SIGTERM, lambda _signal, _frame: SHUTDOWN.set())
    try:
        yield SHUTDOWN
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(rows: list[Row]) -> list[str]:
    """What a shutdown left for the next run, in words; empty when the run was not stopped."""
    if not SHUTDOWN.is_set():
        return []
    # Each stopped publication's detail says how many of its recipients or parts went out before the stop.
    left = [
        f"{row['channel']}: {row['title']} ({row['detail'].removeprefix(STOPPED).split(';')[0].strip()})"
        for row in rows
        if row["state"] == "retry" and STOPPED in row["detail"]
    ]
    return [f"{STOPPED}; left for the next run: {', '.join(left) or 'every channel not yet published'}"]


def not_going_out(rows: list[Row]) -> list[Row]:
    """The drafts the rules refused or the PHI check holds at the end of a run (a draft's last row counts: one held,
    then released in the form and published, is not); staff's own rejections are not among them."""
    latest = {(row["channel"], tuple(row.get("items", ()))): row for row in rows}
    return [row for row in latest.values() if row["state"] in ("rejected", "held") and not row.get("decided")]


def _finish(rows: list[Row], summary: str, result: dict[str, Any]) -> State[Any] | dict[str, Any]:
    """Name the flow run; return ``result``, or a Failed state (which notifies) naming each channel and reason when
    something failed for good or a sender stopped mid-send. A transient failure ("retry") is not a failure of the
    run: the ingest job sends it again when its wait is over; unless a person must fix a credential first (a 401,
    a secret not set): that is notified too, naming what to fix."""
    _name_run(summary)
    failed = [
        row
        for row in rows
        if row["state"] in ("failed", "unknown")
        or (row["state"] == "retry" and str(row["detail"]).startswith(CREDENTIAL_TO_FIX))
    ]
    stopped = _stopped(rows)
    held = _held(rows)
    if not failed and not stopped and not held:
        # Refused drafts do not fail the run, but its state says why, where staff look first.
        told = not_going_out(rows)
        if not told:
            return result
        reasons = "; ".join(f"{row['channel']}: {row['title']}: {row['state']}: {row['detail']}" for row in told)
        return Completed(message=f"{len(told)} not going out: {reasons}", data=result)
    reasons = "; ".join([*(f"{row['channel'] or row['title']}: {row['detail']}" for row in failed), *stopped])
    # "0 not sent" would read as all sent when a stop left the rest for the next run.
    said = reasons and (f"{len(failed)} not sent: {reasons}" if failed else reasons)
    return Failed(message="; ".join(filter(None, [said, *held])), data=result)


def _held(rows: list[Row]) -> list[str]:
    """Holds staff must hear of at once, through the failure route: a new hold for possible PHI, an item held out
    of a digest that went out, a held draft that expired unreleased. The rest of the run went on."""
    told = {
        (row["channel"], tuple(row["items"])): f"HELD, possible PHI, {row['channel']} '{row['title']}': {row['detail']}"
        for row in reversed(rows)  # the first row of a draft says it best: held as drafted, not "still held"
        if row["state"] == "held" or (row["state"] == "expired" and row["detail"].startswith("held for possible PHI"))
    }
    return list(reversed(told.values()))


def _quiet_if_the_console_is_gone() -> None:
    """Called as each flow starts: should its console go away, stop writing to it instead of crashing.

    Under ``carecast serve`` a run's console output goes to ``serve`` through a pipe. Were ``serve`` killed, the next
    log line would meet a broken pipe, which rich (Prefect's console) turns into SystemExit: a run that had sent
    everything would end Crashed, with a false alert. Its logs still reach the Prefect API either way.
    """
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    for handler in {handler for logger in loggers for handler in getattr(logger, "handlers", ())}:
        console = getattr(handler, "console", None)
        if isinstance(console, Console):
            console.on_broken_pipe = functools.partial(_go_quiet, console)  # type: ignore[method-assign]


def _go_quiet(console: Console) -> None:
    console.quiet = True
    with open(os.devnull, "wb") as devnull:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                os.dup2(devnull.fileno(), stream.fileno())


HOOKS: dict[str, Any] = {"on_failure": [notify_failure], "on_crashed": [notify_failure]}
