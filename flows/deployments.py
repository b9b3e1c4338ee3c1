"""``carecast serve``: one Prefect deployment per job of a practice's config, served from this process.

Jobs: ``ingest`` every ``ingest.every_minutes`` (elapsed time from :attr:`Every.ANCHOR`), ``publish`` for each
enabled channel at its slots, one ``Cron(cron, timezone=<practice zone>)`` per cron string of ``Slot.to_cron()``,
so Prefect fires them in the practice's wall-clock time across daylight saving (a cron without a zone is UTC).
A channel without a schedule gets a deployment with no schedule: it runs when staff press Run. So does ``resolve``,
a form to settle what a run that died mid-send left unknown.

Every deployment carries the flows' typed, documented parameters (``practice``, ``channels``, ``items``,
``dry_run``), so the UI's Run button opens a form; its defaults are this practice's config and channel.
Every deployment, and so every run of it, carries the practice's tag (:func:`practice_tag`); with ``notify.webhook``
configured, ``serve`` also registers the server automation that reports their failed or crashed runs
(:func:`flows.notify.watch_deployments`).
"""

from __future__ import annotations

import re
from pathlib import Path

from prefect import serve as prefect_serve
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron, Interval

from carecast.config import Settings
from carecast.practice import load_settings
from carecast.schedule import Every
from flows.notify import watch_deployments
from flows.pipeline import ingest, publish
from flows.resolve import resolve


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def deployment_name(settings: Settings, job: str) -> str:
    """``<practice>-<job>``: several practices can share one server."""
    return f"{_slug(settings.practice.short_name)}-{_slug(job)}"


def practice_tag(settings: Settings) -> str:
    """The tag on each of the practice's deployments and their runs; its failure automation matches on it."""
    return _slug(settings.practice.short_name)


def deployments(config: Path | str) -> list[RunnerDeployment]:
    """The practice's deployments: ``ingest/<practice>-sources`` and ``publish/<practice>-<channel>`` per channel.

    Raises ConfigError when the config is invalid.
    """
    path = Path(config).resolve()
    settings = load_settings(path)
    zone = settings.practice.timezone
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


def serve(config: Path | str) -> None:
    """Register the practice's deployments (and, with ``notify.webhook``, their failure automation) and run their
    flow runs until interrupted (Ctrl-C or SIGTERM).

    Raises ConfigError when the config is invalid, before anything is registered;
    prefect.exceptions.PrefectHTTPStatusError when the server refuses the automation or its webhook block.
    """
    built = deployments(config)
    settings = load_settings(Path(config))
    watch_deployments(settings, practice_tag(settings))
    prefect_serve(*built)
