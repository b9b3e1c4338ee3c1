"""CareCast's flows on Prefect: ``pipeline`` (``carecast run``), and ``ingest`` and ``publish``, the two jobs
``carecast serve`` deploys on the practice's schedules.

Thin by design: tasks take the config path and a source or channel name, call :mod:`carecast.pipeline`, and
return plain dicts; all the logic, and every guarantee against sending twice, lives in the core and the ledger.
One task run per source and per channel (never per item or recipient: each task run costs ~15 ms). Task and flow
runs are renamed when they finish, so the run list says what each did ("publish x: 3 posts").

Approvals (:mod:`carecast_flows.approvals`): a ``publish`` run started from a deployment suspends while drafts of a
channel under ``approval: review`` wait for their slot, with a form listing each draft (approve, reject, edited text)
and a preview artifact of each. Suspended, it holds no process; resumed, it starts again from the top (every step is
idempotent through the ledger), applies the decisions and publishes. A suspension times out, failing the run, when
the last late window of its drafts closes; drafts still pending then expire at the next run and are never sent late.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectNotFound
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Failed, State

from carecast import pipeline as core
from carecast.channel import STOPPED, Channel, PracticeContext
from carecast.config import DEFAULT_CONFIG, Settings
from carecast.errors import ConfigError
from carecast.model import now_utc
from carecast.outcomes import as_row
from carecast.practice import open_practice
from carecast_flows import artifacts
from carecast_flows import secrets as _secrets  # noqa: F401  registers {block: ...} credentials
from carecast_flows.approvals import _ask, decide_drafts
from carecast_flows.calendar import publish_calendar, refresh_calendar
from carecast_flows.notify import said, tell_staff
from carecast_flows.runs import (
    HOOKS,
    SHUTDOWN,
    Row,
    _counted,
    _finish,
    _held,
    _name_run,
    _quiet_if_the_console_is_gone,
    _stop_gracefully,
    _stopped,
    not_going_out,
)


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


@task(task_run_name="ingest {source}", cache_policy=NO_CACHE)
def ingest_source(config_path: str, source: str, polled: dict[str, Any] | None = None) -> dict[str, Any]:
    """Poll ``source``; with ``polled`` (the report, as plain data, of a poll of this run made before the flow:
    ``carecast run``'s look), report that poll instead of polling again: one request per feed and run."""
    if polled is None:
        with open_practice(config_path) as practice:
            report = core.ingest(practice.settings, practice.ledger, source)
    else:
        report = core.SourceReport(**polled)
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
        rows = [as_row(outcome) for outcome in core.adapt(settings, ledger, channel, dry_run=dry_run, items=items)]
    summary = _counted(rows, "nothing new")
    get_run_logger().info("adapt %s: %s", channel, summary)
    return rows


@task(task_run_name="expire {channel}", cache_policy=NO_CACHE)
def expire_channel(config_path: str, channel: str) -> list[Row]:
    with open_practice(config_path) as practice:
        settings, ledger = practice.settings, practice.ledger
        rows = [as_row(outcome) for outcome in core.expire_late_drafts(settings, ledger, channel)]
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
        rows = [as_row(outcome) for outcome in outcomes]
    sent = sum(row["state"] == "published" for row in rows)
    get_run_logger().info("publish %s: %d published, %d not", channel, sent, len(rows) - sent)
    return rows


retry_channel = publish_channel.with_options(task_run_name="retry {channel}")


@task(task_run_name="report", cache_policy=NO_CACHE)
def report(config_path: str, rows: list[Row], channels: list[str], started: datetime | None = None) -> None:
    with open_practice(config_path) as practice:
        artifacts.run_report(practice.settings, practice.ledger, rows, channels, started)
        publish_calendar(practice.settings, practice.ledger)


def _read_sources(
    config_path: str, practice: PracticeContext, polled: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Bring the audience files into the ledger, then read every source, one task run each; with ``polled``
    (``carecast run``'s look did both before the flow), report its polls instead."""
    if polled is None:
        core.sync_audience(practice.settings, practice.ledger)
    earlier = polled or {}
    futures = [ingest_source.submit(config_path, source, earlier.get(source)) for source in practice.settings.sources]
    return [future.result() for future in futures]


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
    config_path: str = str(DEFAULT_CONFIG),
    dry_run: bool = False,
    channels: list[str] | None = None,
    ingested: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Ingest every source, then adapt and (unless ``dry_run``) publish each chosen channel: ``carecast run``.
    ``ingested``: the reports of ``carecast run``'s look before the flow, which polled every source and brought the
    audience files in: the flow reports them and polls no source again.

    Returns ``{"sources": [...], "outcomes": [...]}``: one report per source and one row per draft; as the data
    of a Failed state (which notifies ``notify.webhook``) when a source or a publication failed.
    """
    _quiet_if_the_console_is_gone()
    with open_practice(config_path) as opened:  # shared by the run's tasks, as in ingest
        settings = opened.settings
        names = core.channel_names(settings, channels)
        reports = _read_sources(config_path, opened, ingested)
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


def run_here(
    config_path: str,
    *,
    dry_run: bool,
    channels: list[str] | None,
    ingested: dict[str, dict[str, Any]] | None = None,
) -> State[Any]:
    """``carecast run``: the ``pipeline`` flow in this process, to its end; its final state. ``ingested``: the
    reports of the command's look, by source (see ``pipeline``).

    Without heartbeats: they are how a deployment's run, which nobody watches, is found dead (``carecast deploy``
    sets them); here the person who started the run sees it end, and Prefect's heartbeat thread, sleeping a second
    at a time, would hold the end of the run up to a second.
    """
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        state: State[Any] = pipeline(
            config_path=config_path, dry_run=dry_run, channels=channels, ingested=ingested, return_state=True
        )
    # The run's last logs go to the API now, while it still answers: the command ends without the interpreter's
    # thread shutdown, where Prefect would send them (after the temporary API stopped: "Error logging to API").
    APILogWorker.drain_all(timeout=5)
    return state
