"""``carecast serve`` and ``carecast deploy``: one Prefect deployment per job of a practice's config, served from
this process (one machine), or registered in a process work pool whose workers run them (many practices, many
machines).

Jobs: ``ingest`` every ``ingest.every_minutes`` (elapsed time from :attr:`Every.ANCHOR`), ``publish`` for each
enabled channel at its slots, one ``Cron(cron, timezone=<practice zone>)`` per cron string of ``Slot.to_cron()``,
so Prefect fires them in the practice's wall-clock time across daylight saving (a cron without a zone is UTC).
``metrics`` and ``report`` (:mod:`carecast_flows.report`) read the providers' numbers and send the weekly report.
A channel without a schedule gets a deployment with no schedule: it runs when staff press Run. So do ``resolve``,
a form to settle what a run that died mid-send left unknown, and ``review/<practice>``, the form to decide on every
draft waiting, held or refused, any time ahead of its slot.

Every deployment carries the flows' typed, documented parameters (``practice``, ``channels``, ``items``,
``dry_run``), so the UI's Run button opens a form; its defaults are this practice's config and channel.
Every deployment, and so every run of it, carries the practice's tag (:func:`practice_tag`); with ``notify.webhook``
configured, ``serve`` also registers the server automation that reports their failed or crashed runs
(:func:`carecast_flows.notify.watch_deployments`).

``deploy`` registers the same deployments, for every practice, in a process work pool: their entrypoints are module
paths (``carecast_flows.pipeline.publish``), so a worker runs them from the CareCast package installed beside it, with
no code download. It also creates or updates what the workers share: each sender's rate limit (a global concurrency
limit, :meth:`carecast.channel.Channel.rate_limit`) and the automation that marks a run whose heartbeats stopped
Crashed. Everything is looked up by name and updated in place, so deploying twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from prefect import serve as prefect_serve
from prefect.automations import Automation, ChangeFlowRunState
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron, Interval
from prefect.workers.process import ProcessWorker

from carecast.channel import RateLimit, make_channel
from carecast.config import Settings, slugify
from carecast.errors import ConfigError
from carecast.ledger import Ledger
from carecast.practice import load_settings
from carecast.schedule import Every
from carecast_flows.calendar import calendar
from carecast_flows.notify import save_automation, watch_deployments
from carecast_flows.pipeline import ingest, publish
from carecast_flows.report import metrics as read_numbers
from carecast_flows.report import report as weekly_report
from carecast_flows.resolve import resolve
from carecast_flows.review import review

#: The automation that marks a deployed run Crashed when its heartbeats stop (its process or machine died).
CRASHED_WHEN_SILENT = "carecast: crashed when its heartbeats stop"


def deployment_name(settings: Settings, job: str) -> str:
    """``<practice>-<job>``: several practices can share one server."""
    return f"{settings.slug}-{slugify(job)}"


def practice_tag(settings: Settings) -> str:
    """The tag on each of the practice's deployments and their runs; its failure automation matches on it."""
    return settings.slug


def deployments(config: Path | str) -> list[RunnerDeployment]:
    """The practice's deployments: ``ingest/<practice>-sources``, ``resolve/<practice>-resolve``,
    ``review/<practice>`` and ``publish/<practice>-<channel>`` per channel.

    Raises ConfigError when the config is invalid.
    """
    path = Path(config).resolve()
    settings = load_settings(path)
    tags = [practice_tag(settings)]
    built = [
        RunnerDeployment.from_flow(
            ingest,
            name=deployment_name(settings, "sources"),
            schedules=[Interval(settings.ingest.interval, anchor_date=Every.ANCHOR, timezone="UTC")],
            parameters={"practice": str(path)},
            description=f"{settings.practice.name}: read every source every {settings.ingest.every_minutes} min "
            "and draft new items, which then wait for their channel's slot (and approval).",
            tags=tags,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
    ]
    built.append(
        RunnerDeployment.from_flow(
            resolve,
            name=deployment_name(settings, "resolve"),
            parameters={"practice": str(path)},
            description=f"{settings.practice.name}: settle a publication left unknown by a run that died mid-send "
            "(carecast status lists it): sent, resend (once, by the next run) or drop.",
            tags=tags,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
    )
    built.append(
        RunnerDeployment.from_flow(
            review,
            name=settings.slug,
            parameters={"practice": str(path)},
            description=f"{settings.practice.name}: decide now, ahead of the slots: Run opens a form listing every "
            "draft waiting for approval, held for possible PHI or refused, with its preview and why.",
            tags=tags,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
    )
    built += reporting(settings, path, tags)
    built += publishing(settings, path, tags)
    return built


def publishing(settings: Settings, path: Path, tags: list[str]) -> list[RunnerDeployment]:
    """``publish/<practice>-<channel>`` for each enabled channel, at its schedule's slots (none: on Run only)."""
    zone = settings.practice.timezone
    built = []
    for name, channel in settings.channels.items():
        if not channel.enabled:
            continue
        crons = [expression for slot in channel.schedule for expression in slot.to_cron()]
        slots = ", ".join(crons) if crons else "no schedule: runs when you press Run"
        built.append(
            RunnerDeployment.from_flow(
                publish,
                name=deployment_name(settings, name),
                schedules=[Cron(expression, timezone=zone) for expression in crons],
                parameters={"practice": str(path), "channels": [name]},
                description=f"{settings.practice.name}: publish {name} ({channel.type}, approval {channel.approval}) "
                f"at {slots} ({zone}).",
                tags=[*tags, name],
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    return built


def reporting(settings: Settings, path: Path, tags: list[str]) -> list[RunnerDeployment]:
    """``metrics/<practice>`` every ``report.metrics_every_hours`` and ``report/<practice>`` at ``report.schedule``."""
    zone = settings.practice.timezone
    every = timedelta(hours=settings.report.metrics_every_hours)
    crons = [expression for slot in settings.report.schedule for expression in slot.to_cron()]
    return [
        RunnerDeployment.from_flow(
            read_numbers,
            name=settings.slug,
            schedules=[Interval(every, anchor_date=Every.ANCHOR, timezone="UTC")],
            parameters={"practice": str(path)},
            description=f"{settings.practice.name}: read each channel's numbers for posts younger than "
            f"{settings.report.metrics_days} days, every {settings.report.metrics_every_hours} h.",
            tags=tags,
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
        RunnerDeployment.from_flow(
            weekly_report,
            name=settings.slug,
            schedules=[Cron(expression, timezone=zone) for expression in crons],
            parameters={"practice": str(path)},
            description=f"{settings.practice.name}: the weekly 'did it work?' report, with charts, emailed to "
            f"{settings.report.to or settings.practice.email} at {', '.join(crons)} ({zone}).",
            tags=tags,
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
    ]


def rate_limits(settings: Settings) -> list[RateLimit]:
    """The sender limits the practice's enabled channels publish under (none for a channel writing to the outbox)."""
    found = (make_channel(settings, name).rate_limit() for name, config in settings.channels.items() if config.enabled)
    return [limit for limit in found if limit is not None]


def ensure_rate_limits(limits: Sequence[RateLimit]) -> list[str]:
    """Create each limit as a global concurrency limit that frees ``requests`` slots every ``seconds``, or update
    it when it differs; returns a line per limit created or changed (none when all are as they should be)."""
    changed = []
    with get_client(sync_client=True) as client:
        for limit in {limit.name: limit for limit in limits}.values():
            decay = limit.requests / limit.seconds
            try:
                existing = client.read_global_concurrency_limit_by_name(limit.name)
            except ObjectNotFound:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=limit.name, limit=limit.requests, slot_decay_per_second=decay)
                )
                changed.append(f"limit {limit.name}: created ({limit.requests} per {limit.seconds:g} s)")
                continue
            if (existing.limit, existing.slot_decay_per_second, existing.active) != (limit.requests, decay, True):
                client.update_global_concurrency_limit(
                    limit.name,
                    GlobalConcurrencyLimitUpdate(limit=limit.requests, slot_decay_per_second=decay, active=True),
                )
                changed.append(f"limit {limit.name}: updated ({limit.requests} per {limit.seconds:g} s)")
    return changed


def ensure_process_pool(pool: str) -> str | None:
    """Create the process work pool ``pool`` when missing; a line saying so, else None.

    Raises ConfigError when a pool of that name exists with another type (its workers could not run CareCast).
    """
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(pool)
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(WorkPoolCreate(name=pool, type="process", base_job_template=template))
            return f"work pool {pool}: created (process)"
    if existing.type != "process":
        raise ConfigError("--pool", [("", f"work pool {pool!r} is of type {existing.type!r}, not process")])
    return None


def watch_heartbeats(crashed_after: timedelta) -> None:
    """Create or update the automation that marks a flow run Crashed when no heartbeat, nor a final state, follows
    its last heartbeat within ``crashed_after`` (Prefect's documented detection of runs whose process died); the
    practice's failure automation then reports it like any other crash."""
    automation = Automation(
        name=CRASHED_WHEN_SILENT,
        description="A deployed run whose worker or machine died stops sending heartbeats: mark it Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=crashed_after,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {crashed_after.total_seconds():g} s: its worker or machine died",
            )
        ],
    )
    save_automation(automation)


def deploy(configs: Sequence[Path | str], pool: str, *, heartbeat: int = 30, crashed_after: int = 90) -> list[str]:
    """Register every practice's deployments in the process work pool ``pool`` (created when missing), with their
    sender limits, failure automations and the crashed-run automation; open each practice's ledger once, so its
    tables (or PostgreSQL schema) exist before two runs race to create them. Deployed runs send a heartbeat every
    ``heartbeat`` seconds; one silent for ``crashed_after`` seconds is marked Crashed.

    Returns what was done, a line each. Raises ConfigError as :func:`load_settings` does, LedgerError when a ledger
    cannot be opened, and prefect.exceptions.PrefectHTTPStatusError when the server refuses something.
    """
    lines = [line for line in [ensure_process_pool(pool)] if line]
    job_variables = {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(heartbeat)}}
    for config in configs:
        settings = load_settings(config)
        Ledger(settings.ledger_url()).close()
        lines += ensure_rate_limits(rate_limits(settings))
        for deployment in deployments(config):
            deployment.job_variables = job_variables
            deployment.apply(work_pool_name=pool)
            lines.append(f"{deployment.flow_name}/{deployment.name}: in pool {pool}")
        watch_deployments(settings, practice_tag(settings))
    watch_heartbeats(timedelta(seconds=crashed_after))
    return lines


def serve(configs: Sequence[Path | str]) -> None:
    """Register every practice's deployments (and, with ``notify.webhook``, their failure automation), publish each
    practice's calendar, and run their flow runs until interrupted (Ctrl-C or SIGTERM).

    Raises ConfigError when a config is invalid, before anything is registered;
    prefect.exceptions.PrefectHTTPStatusError when the server refuses the automation or its webhook block.
    """
    built = [deployment for config in configs for deployment in deployments(config)]
    for config in configs:
        settings = load_settings(Path(config))
        ensure_rate_limits(rate_limits(settings))
        watch_deployments(settings, practice_tag(settings))
        calendar(str(Path(config).resolve()))
    prefect_serve(*built)
