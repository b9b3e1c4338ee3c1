"""Tell the practice when a run failed or crashed: a JSON POST to ``notify.webhook`` naming practice, channel, reason.

Used as the ``on_failure`` and ``on_crashed`` hook of every CareCast flow. The payload carries a ``text`` line too,
so a Slack or Teams incoming webhook shows it as a message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from prefect import Flow
from prefect.client.schemas.objects import FlowRun
from prefect.logging import get_logger
from prefect.states import State

from carecast.config import load_settings
from carecast.errors import ConfigError

logger = get_logger("carecast.notify")


def notify_failure(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    """POST what failed to the practice's webhook, if it configured one; a hook never raises (it logs instead)."""
    parameters = flow_run.parameters
    config = parameters.get("practice") or parameters.get("config_path")
    try:
        settings = load_settings(Path(str(config)))
    except ConfigError as exc:
        logger.error("cannot notify about %s: %s", flow_run.name, exc)
        return
    if settings.notify.webhook is None:
        return
    channels = parameters.get("channels") or list(settings.channels)
    reason = state.message or state.type.value
    payload = {
        "practice": settings.practice.name,
        "flow": flow.name,
        "flow_run": flow_run.name,
        "flow_run_id": str(flow_run.id),
        "state": state.type.value,
        "channels": channels,
        "reason": reason,
        "text": f"CareCast, {settings.practice.name}: {flow.name} run {flow_run.name!r} ({', '.join(channels)}) "
        f"{state.type.value.lower()}: {reason}",
    }
    try:
        requests.post(str(settings.notify.webhook), json=payload, timeout=10).raise_for_status()
    except requests.RequestException as exc:
        logger.error("could not notify %s about %s: %s", settings.notify.webhook, flow_run.name, exc)
