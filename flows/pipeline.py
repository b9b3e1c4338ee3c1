"""CareCast's flows on Prefect: ``pipeline`` (``carecast run``), and ``ingest`` and ``publish``, the two jobs
``carecast serve`` deploys on the practice's schedules.

Thin by design: tasks take the config path and a source or channel name, call :mod:`carecast.pipeline`, and
return plain dicts; all the logic, and every guarantee against sending twice, lives in the core and the ledger.
One task run per source and per channel (never per item or recipient: each task run costs ~15 ms). Task and flow
runs are renamed when they finish, so the run list says what each did ("publish x: 3 posts").

Approvals: a ``publish`` run started from a deployment suspends while drafts of a channel under ``approval:
review`` wait for their slot, with a form listing each draft (approve, reject, edited text) and a preview artifact
of each. Suspended, it holds no process; resumed, it starts again from the top (every step is idempotent through
the ledger), applies the decisions and publishes. A suspension times out, failing the run, when the last late
window of its drafts closes; drafts still pending then expire at the next run and are never sent late.
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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectNotFound
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Completed, Failed, State
from pydantic import BaseModel, Field, create_model
from rich.console import Console

from carecast import pipeline as core
from carecast.channel import CREDENTIAL_TO_FIX, STOPPED, Channel, PracticeContext
from carecast.config import DEFAULT_CONFIG, Settings
from carecast.errors import CareCastError, ConfigError
from carecast.model import now_utc
from carecast.practice import open_practice
from carecast_flows import artifacts
from carecast_flows import secrets as _secrets  # noqa: F401  registers {block: ...} credentials
from carecast_flows.calendar import publish_calendar, refresh_calendar
from carecast_flows.notify import notify_failure, said, tell_staff

#: How long a run waits for staff on a channel without a schedule (any run publishes there).
UNSCHEDULED_WAIT = timedelta(days=1)

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


def _deployment_pace(settings: Settings, channel: Channel) -> Callable[[str], None] | None:
    """How a deployment's run paces ``channel``'s requests: a slot of its sender's global concurrency limit (which
    ``carecast deploy`` and ``carecast serve`` create), held across every worker, taken with ``strict``. A local run
    (``carecast run``) has no shared limits to wait for: None.

    Raises ConfigError, before anything is claimed, when the sender's limit is missing on the server: the run fails
    loudly instead of sending unpaced.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.deployment_id is None:
        return None
    limit = channel.rate_limit()
    if limit is not None:
        with get_client(sync_client=True) as client:
            try:
                client.read_global_concurrency_limit_by_name(limit.name)
            except ObjectNotFound as exc:
                why = f"its sender's rate limit {limit.name} is missing on the Prefect server: run carecast deploy"
                raise ConfigError(settings.file, [(f"channels.{channel.instance}", why)]) from exc
    return lambda name: rate_limit(name, strict=True)


def _counted(rows: list[Row], nothing: str) -> str:
    states = Counter(row["state"] for row in rows)
    return ", ".join(f"{n} {state}" for state, n in states.items()) or nothing


def _row(outcome: core.Outcome) -> Row:
    draft = outcome.draft
    return {
        "channel": outcome.channel,
        "items": list(outcome.item_ids),
        "title": outcome.title,
        "state": outcome.state,
        "detail": outcome.detail,
        "preview": draft.text if draft is not None else None,
        "subject": draft.subject if draft is not None else None,
        "html": draft.html if draft is not None else None,
    }


@task(task_run_name="ingest {source}", cache_policy=NO_CACHE)
def ingest_source(config_path: str, source: str) -> dict[str, Any]:
    with open_practice(config_path) as practice:
        settings, ledger = practice.settings, practice.ledger
        report = core.ingest(settings, ledger, source)
    logger = get_run_logger()
    if report.error:
        logger.error("source %s failed: %s", source, report.error)
    else:
        state = "not modified" if report.not_modified else f"{len(report.new)} new, {len(report.edited)} edited"
        logger.info("source %s: %s", source, state)
    for warning in report.warnings:
        logger.warning("source %s: %s", source, warning)
    for failure in report.failures:
        logger.error("source %s: %s", source, failure)
    return asdict(report)


@task(task_run_name="{channel}", cache_policy=NO_CACHE)
def run_channel(config_path: str, channel: str, dry_run: bool) -> list[Row]:
    """``carecast run``'s work on one channel, in one task run (each costs the run ~25 ms of orchestration): adapt
    what is new, then, unless ``dry_run``, expire late drafts and publish what is due; the log says each step."""
    rows = adapt_channel.fn(config_path, channel, dry_run)
    if not dry_run:
        rows += expire_channel.fn(config_path, channel)
        rows += publish_channel.fn(config_path, channel)
    return rows


@task(task_run_name="adapt {channel}", cache_policy=NO_CACHE)
def adapt_channel(config_path: str, channel: str, dry_run: bool, items: list[str] | None = None) -> list[Row]:
    with open_practice(config_path) as practice:
        settings, ledger = practice.settings, practice.ledger
        rows = [_row(outcome) for outcome in core.adapt(settings, ledger, channel, dry_run=dry_run, items=items)]
    summary = _counted(rows, "nothing new")
    get_run_logger().info("adapt %s: %s", channel, summary)
    return rows


@task(task_run_name="expire {channel}", cache_policy=NO_CACHE)
def expire_channel(config_path: str, channel: str) -> list[Row]:
    with open_practice(config_path) as practice:
        settings, ledger = practice.settings, practice.ledger
        rows = [_row(outcome) for outcome in core.expire_late_drafts(settings, ledger, channel)]
    for row in rows:
        get_run_logger().warning("%s: draft of %r expired: %s", channel, row["title"], row["detail"])
    return rows


@task(task_run_name="publish {channel}", cache_policy=NO_CACHE)
def publish_channel(
    config_path: str, channel: str, items: list[str] | None = None, retries_only: bool = False
) -> list[Row]:
    with open_practice(config_path) as practice, _stop_gracefully() as stopping:
        settings, ledger = practice.settings, practice.ledger
        outcomes = core.publish(
            settings,
            ledger,
            channel,
            items=items,
            retries_only=retries_only,
            pace=_deployment_pace(settings, practice.channels[channel]),
            stopping=stopping,
        )
        rows = [_row(outcome) for outcome in outcomes]
    sent = sum(row["state"] == "published" for row in rows)
    get_run_logger().info("publish %s: %d published, %d not", channel, sent, len(rows) - sent)
    return rows


retry_channel = publish_channel.with_options(task_run_name="retry {channel}")

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


@task(task_run_name="review {channels}", cache_policy=NO_CACHE)
def review_drafts(config_path: str, channels: list[str]) -> list[Row]:
    """Drafts waiting for approval on ``channels``, each previewed as an artifact; ``due`` when its slot has come."""
    with open_practice(config_path) as practice:
        settings, ledger = practice.settings, practice.ledger
        now = now_utc()
        waiting = [pair for name in channels for pair in core.waiting(settings, ledger, name)]
        artifacts.draft_previews(settings, ledger, waiting)
        rows = []
        for stored, slot in waiting:
            findings = artifacts.held_findings(ledger, stored)
            window = settings.channels[stored.channel].late.send_within
            deadline = now + UNSCHEDULED_WAIT if slot is None else slot + window
            rows.append(
                {
                    "id": stored.id,
                    "channel": stored.channel,
                    "title": core.title_of(ledger.items(stored.draft.item_ids)),
                    "text": core.editable_text(stored.draft),
                    "slot": artifacts.local(settings, slot),
                    "deadline": deadline.isoformat(),
                    "due": slot is None or slot <= now < deadline,
                    "measures": core.describe_measures(stored.draft),
                    "held": [finding.summary for finding in findings],
                }
            )
    return rows


@task(task_run_name="decide", cache_policy=NO_CACHE)
def decide_drafts(config_path: str, decisions: dict[int, dict[str, str]]) -> list[Row]:
    """Apply staff's decisions (approve, with edited text, or reject); a refused edit is reported, not raised."""
    with open_practice(config_path) as practice:
        settings, ledger = practice.settings, practice.ledger
        rows: list[Row] = []
        for draft_id, decision in decisions.items():
            try:
                outcome = core.decide(
                    settings,
                    ledger,
                    draft_id,
                    approve=decision["decision"] == "approve",
                    text=decision["text"],
                    reason=decision["reason"],
                    by=decision["by"] or "the approval form",
                )
            except CareCastError as exc:
                get_run_logger().error("draft %d: %s", draft_id, exc)
                outcome = core.Outcome("", (), "failed", f"decision not applied: {exc}", f"draft {draft_id}")
            rows.append(_row(outcome) | {"decided": True})
    return rows


@task(task_run_name="report", cache_policy=NO_CACHE)
def report(config_path: str, rows: list[Row], channels: list[str], started: datetime | None = None) -> None:
    with open_practice(config_path) as practice:
        artifacts.run_report(practice.settings, practice.ledger, rows, channels, started)
        publish_calendar(practice.settings, practice.ledger)


class Decision(BaseModel):
    """What staff decide about one draft in the approval form."""

    decision: Literal["wait", "approve", "reject"] = Field(
        "wait",
        description="approve: it goes out now; reject: never sent; wait: decide later (it expires after its slot)",
    )
    text: str = Field(description="the text that goes out; edit it to change it (a thread's posts split by ---)")
    reason: str = Field(
        "", description="why you reject it, or why a draft held for possible PHI may go out (kept in the ledger)"
    )
    by: str = Field("", description="your name: recorded with the release of a held draft")


def approval_form(drafts: list[Row]) -> type[RunInput]:
    """The form a paused run shows: one :class:`Decision` per draft, its text filled in."""
    return draft_form(
        "Approvals",
        Decision,
        drafts,
        title=lambda draft: (
            ("HELD, possible PHI: " if draft["held"] else "") + f"{draft['channel']} #{draft['id']}: {draft['title']}"
        ),
        description=lambda draft: (
            f"slot {draft['slot']}; {draft['measures'] or 'see its preview artifact'}"
            + "".join(f"; {summary}" for summary in draft["held"])
            + ("; to send it, fix the text or approve with a reason and your name" if draft["held"] else "")
        ),
    )


def draft_form(
    name: str,
    decision: type[BaseModel],
    drafts: Iterable[Row],
    title: Callable[[Row], str],
    description: Callable[[Row], str],
) -> type[RunInput]:
    """A form named ``name`` with one ``decision`` per draft (field ``draft_<id>``), its text filled in, titled and
    described for staff by ``title`` and ``description``."""
    fields: dict[str, Any] = {
        f"draft_{draft['id']}": (
            decision,
            Field(default=decision(text=draft["text"]), title=title(draft), description=description(draft)),
        )
        for draft in drafts
    }
    form: type[RunInput] = create_model(name, __base__=RunInput, **fields)
    return form


def _read_sources(config_path: str, practice: PracticeContext) -> list[dict[str, Any]]:
    """Bring the audience files into the ledger, then read every source, one task run each."""
    core.sync_audience(practice.settings, practice.ledger)
    futures = [ingest_source.submit(config_path, source) for source in practice.settings.sources]
    return [future.result() for future in futures]


def _ask(config_path: str, names: list[str]) -> dict[int, dict[str, str]]:
    """Suspend for staff's decisions when drafts of ``names`` wait for a slot that has come; {} when none do."""
    drafts = review_drafts(config_path, names)
    due = [draft for draft in drafts if draft["due"]]
    logger = get_run_logger()
    if not due:
        return {}
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.deployment_id is None:
        # Only a deployment's run can be suspended and resumed; a local run leaves the drafts in the ledger.
        logger.warning("%d draft(s) wait for approval: carecast drafts / carecast approve ID", len(due))
        return {}
    timeout = max(datetime.fromisoformat(draft["deadline"]) for draft in due) - now_utc()
    lines = [
        f"- **{d['channel']} #{d['id']}** {d['title']} (slot {d['slot']})"
        + "".join(f"\n  - held, possible PHI: {summary}" for summary in d["held"])
        for d in drafts
    ]
    description = (
        "Decide on each draft below: **approve** (edit its text first if you like), **reject** with a reason, or "
        "leave it on **wait**. Each has a preview under Artifacts.\n\n" + "\n".join(lines)
    )
    answer = suspend_flow_run(
        wait_for_input=approval_form(drafts).with_initial_data(description=description),
        timeout=max(int(timeout.total_seconds()), 60),
    )
    decided = {}
    for draft in drafts:
        decision: Decision = getattr(answer, f"draft_{draft['id']}")
        if decision.decision != "wait":
            decided[draft["id"]] = decision.model_dump()
    return decided


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


@flow(name="ingest", flow_run_name="ingest", log_prints=True, **HOOKS)
@said
def ingest(
    practice: str = str(DEFAULT_CONFIG),
    channels: list[str] | None = None,
    items: list[str] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Read every source, draft the new items for each channel so they wait in the ledger for their slot (and for
    approval), and expire drafts left unapproved after their slot. Publishes nothing new; sends again only what
    failed transiently once its wait is over (a provider's Retry-After, a recipient's quiet hours), so a deferred
    text goes out within ``ingest.every_minutes`` of its opening instead of at the channel's next slot.

    Args:
        practice: the practice's configuration file (config/carecast.yaml), as the server sees it
        channels: draft only for these channels (names under channels:); empty: every enabled channel
        items: draft only these item ids (see carecast status or a run's table); empty: every new item
        dry_run: render previews only; store no drafts
    """
    _quiet_if_the_console_is_gone()
    # Opened once for the whole run: its tasks, running in this process, share it instead of opening their own.
    with open_practice(practice) as opened:
        settings = opened.settings
        names = core.channel_names(settings, channels)
        reports = _read_sources(practice, opened)
        rows: list[Row] = []
        for name in names:
            rows += adapt_channel(practice, name, dry_run, items)
            if not dry_run:
                rows += expire_channel(practice, name)
                rows += retry_channel(practice, name, items, retries_only=True)
        if not dry_run:
            refresh_calendar(practice)
        new = sum(len(report["new"]) for report in reports)
        failed = [report for report in reports if report["error"]]
        # A feed that is down stays down for hours: its error is in the run's name and log, not a failed run that
        # would notify every half hour.
        for report in failed:
            get_run_logger().warning("source %s failed: %s", report["source"], report["error"])
        summary = f"ingest: {new} new item(s), {_counted(rows, 'no new drafts')}" + (
            f", {len(failed)} source(s) failed" if failed else ""
        )
        if not dry_run:
            tell_staff(practice, "ingest", rows)
        return _finish(rows, summary, {"sources": reports, "outcomes": rows})  # type: ignore[return-value]


@flow(name="publish", flow_run_name="publish", log_prints=True, persist_result=True, **HOOKS)
@said
def publish(
    practice: str = str(DEFAULT_CONFIG),
    channels: list[str] | None = None,
    items: list[str] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Draft what is new, ask staff about drafts under review whose slot has come (the run pauses with a form),
    then publish every approved draft of each channel, exactly once, and report what went where.

    Args:
        practice: the practice's configuration file (config/carecast.yaml), as the server sees it
        channels: publish only these channels (names under channels:); empty: every enabled channel
        items: publish only drafts of these item ids; empty: everything due
        dry_run: render and preview only; store nothing, send nothing
    """
    _quiet_if_the_console_is_gone()
    started = now_utc()  # a resumed run starts again from the top: its audit covers what it sends
    with open_practice(practice) as opened:  # shared by the run's tasks, as in ingest
        settings = opened.settings
        names = core.channel_names(settings, channels)
        rows: list[Row] = []
        for name in names:
            rows += adapt_channel(practice, name, dry_run, items)
        if dry_run:
            report(practice, rows, names)
            _name_run(f"publish {', '.join(names)} (dry run): {_counted(rows, 'nothing to preview')}")
            return {"outcomes": rows}
        for name in names:
            rows += expire_channel(practice, name)
        decisions = _ask(practice, names)
        if decisions:
            rows += decide_drafts(practice, decisions)
        for name in names:
            if SHUTDOWN.is_set():
                break
            rows += publish_channel(practice, name, items)
        report(practice, rows, names, started)
        tell_staff(practice, f"publish {', '.join(names)}", rows)
        sent = sum(row["state"] == "published" for row in rows)
        cut = sum(row["state"] == "retry" and STOPPED in row["detail"] for row in rows)
        refused = len(not_going_out(rows))
        summary = (
            f"publish {', '.join(names)}: {sent} post{'' if sent == 1 else 's'}"
            + (f", {refused} refused or held (see why)" if refused else "")
            + (f", {cut} stopped part-way" if cut else "")
        )
        return _finish(rows, summary, {"outcomes": rows})  # type: ignore[return-value]


@flow(name="pipeline", flow_run_name="pipeline {config_path}", log_prints=True, **HOOKS)
def pipeline(
    config_path: str = str(DEFAULT_CONFIG), dry_run: bool = False, channels: list[str] | None = None
) -> dict[str, Any]:
    """Ingest every source, then adapt and (unless ``dry_run``) publish each chosen channel: ``carecast run``.

    Returns ``{"sources": [...], "outcomes": [...]}``: one report per source and one row per draft; as the data
    of a Failed state (which notifies ``notify.webhook``) when a source or a publication failed.
    """
    _quiet_if_the_console_is_gone()
    with open_practice(config_path) as opened:  # shared by the run's tasks, as in ingest
        settings = opened.settings
        names = core.channel_names(settings, channels)
        reports = _read_sources(config_path, opened)
        outcomes: list[Row] = []
        for name in names:
            if SHUTDOWN.is_set():
                break
            outcomes.extend(run_channel(config_path, name, dry_run))
        if not dry_run:
            tell_staff(config_path, "run", outcomes)
    result = {"sources": reports, "outcomes": outcomes}
    failed = [report for report in reports if report["error"]]
    failed_rows = [row for row in outcomes if row["state"] in ("failed", "unknown")]
    failures = [f"source {r['source']}: {failure}" for r in reports for failure in r["failures"]]
    stopped = _stopped(outcomes)
    held = _held(outcomes)
    if not failed and not failed_rows and not failures and not stopped and not held:
        return result
    reasons = [f"source {r['source']}: {r['error']}" for r in failed] + failures
    reasons += [f"{row['channel']}: {row['detail']}" for row in failed_rows] + stopped + held
    return Failed(message="; ".join(reasons), data=result)  # type: ignore[return-value]


def run_here(config_path: str, *, dry_run: bool, channels: list[str] | None) -> State[Any]:
    """``carecast run``: the ``pipeline`` flow in this process, to its end; its final state.

    Without heartbeats: they are how a deployment's run, which nobody watches, is found dead (``carecast deploy``
    sets them); here the person who started the run sees it end, and Prefect's heartbeat thread, sleeping a second
    at a time, would hold the end of the run up to a second.
    """
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        state: State[Any] = pipeline(config_path=config_path, dry_run=dry_run, channels=channels, return_state=True)
    # The run's last logs go to the API now, while it still answers: the command ends without the interpreter's
    # thread shutdown, where Prefect would send them (after the temporary API stopped: "Error logging to API").
    APILogWorker.drain_all(timeout=5)
    return state
