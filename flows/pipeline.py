"""The ``pipeline`` flow: ingest every source, then adapt and publish each channel, on Prefect.

Thin by design: tasks take the config path and a source or channel name, call :mod:`carecast.pipeline`, and
return plain dicts; all the logic, and every guarantee against sending twice, lives in the core and the ledger.
One task run per source and per channel (never per item or recipient: each task run costs ~15 ms).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from carecast import pipeline as core
from carecast.config import Settings, load_settings
from carecast.ledger import Ledger


def _open(config_path: str) -> tuple[Settings, Ledger]:
    settings = load_settings(Path(config_path))
    return settings, Ledger(settings.ledger_url())


@task(task_run_name="ingest {source}")
def ingest_source(config_path: str, source: str) -> dict[str, Any]:
    settings, ledger = _open(config_path)
    try:
        report = core.ingest(settings, ledger, source)
    finally:
        ledger.close()
    logger = get_run_logger()
    if report.error:
        logger.error("source %s failed: %s", source, report.error)
    else:
        state = "not modified" if report.not_modified else f"{len(report.new)} new, {len(report.edited)} edited"
        logger.info("source %s: %s", source, state)
    for warning in report.warnings:
        logger.warning("source %s: %s", source, warning)
    return asdict(report)


@task(task_run_name="adapt {channel}")
def adapt_channel(config_path: str, channel: str, dry_run: bool) -> list[dict[str, Any]]:
    settings, ledger = _open(config_path)
    try:
        outcomes = core.adapt(settings, ledger, channel, dry_run=dry_run)
    finally:
        ledger.close()
    states = Counter(outcome.state for outcome in outcomes)
    get_run_logger().info(
        "adapt %s: %s", channel, ", ".join(f"{n} {state}" for state, n in states.items()) or "nothing new"
    )
    return [_row(outcome) for outcome in outcomes]


@task(task_run_name="publish {channel}")
def publish_channel(config_path: str, channel: str) -> list[dict[str, Any]]:
    settings, ledger = _open(config_path)
    try:
        outcomes = core.publish(settings, ledger, channel)
    finally:
        ledger.close()
    sent = sum(outcome.state == "published" for outcome in outcomes)
    get_run_logger().info("publish %s: %d published, %d not", channel, sent, len(outcomes) - sent)
    return [_row(outcome) for outcome in outcomes]


def _row(outcome: core.Outcome) -> dict[str, Any]:
    return {
        "channel": outcome.channel,
        "items": list(outcome.item_ids),
        "title": outcome.title,
        "state": outcome.state,
        "detail": outcome.detail,
        "preview": outcome.draft.text if outcome.draft is not None else None,
    }


@flow(name="pipeline", flow_run_name="pipeline {config_path}", log_prints=True)
def pipeline(
    config_path: str = "config/carecast.yaml", dry_run: bool = False, channels: list[str] | None = None
) -> dict[str, Any]:
    """Ingest every source, then adapt and (unless ``dry_run``) publish each chosen channel.

    Returns ``{"sources": [...], "outcomes": [...]}``: one report per source and one row per draft.
    """
    settings = load_settings(Path(config_path))
    names = core.channel_names(settings, channels)
    ledger = Ledger(settings.ledger_url())  # creates the tables once, before tasks race to write
    try:
        core.sync_audience(settings, ledger)
    finally:
        ledger.close()
    sources = [ingest_source.submit(config_path, source) for source in settings.sources]
    reports = [future.result() for future in sources]
    outcomes: list[dict[str, Any]] = []
    for name in names:
        outcomes.extend(adapt_channel(config_path, name, dry_run))
        if not dry_run:
            outcomes.extend(publish_channel(config_path, name))
    return {"sources": reports, "outcomes": outcomes}
