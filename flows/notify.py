"""Tell the practice when a run failed or crashed: a JSON POST to ``notify.webhook`` naming practice, channel, reason.

Two senders, one payload (``practice``, ``flow``, ``deployment``, ``flow_run``, ``flow_run_id``, ``state``,
``channels``, ``reason``, and a ``text`` line, so a Slack or Teams incoming webhook shows it as a message):

- Runs of ``carecast serve``'s deployments: a Prefect automation on the server, registered by
  :func:`watch_deployments`, calls a Webhook block holding the address. It reacts to the run's Failed or Crashed
  event, so it also reports what no hook can: a suspension for approval that timed out (the server fails the run)
  and a run whose process was killed (``carecast serve`` marks it Crashed).
- Runs without a deployment (``carecast run``, whose embedded server runs no automations): :func:`notify_failure`,
  the ``on_failure`` and ``on_crashed`` hook of every CareCast flow. It skips deployment runs, so nothing is
  reported twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import requests
from prefect import Flow
from prefect.automations import Automation, CallWebhook, EventTrigger
from prefect.blocks.webhook import Webhook
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.logging import get_logger
from prefect.states import State
from prefect.types import SecretDict
from pydantic import SecretStr

from carecast.config import Settings
from carecast.errors import ConfigError
from carecast.practice import load_settings

logger = get_logger("carecast.notify")

#: The automation's payload, rendered by the server (Jinja, sandboxed) for the run whose event fired it; set
#: ``practice`` and ``every_channel`` (an ingest run's channels) before it. The state comes from the event, not
#: the run, which may have moved on by the time the action runs.
PAYLOAD = """\
{%- set state = event.payload.validated_state -%}
{%- set channels = flow_run.parameters.channels or every_channel -%}
{%- set reason = state.message or state.type -%}
{
  "practice": {{ practice | tojson }},
  "flow": {{ flow.name | tojson }},
  "deployment": {{ deployment.name | tojson }},
  "flow_run": {{ flow_run.name | tojson }},
  "flow_run_id": {{ flow_run.id | string | tojson }},
  "state": {{ state.type | tojson }},
  "channels": {{ channels | tojson }},
  "reason": {{ reason | tojson }},
  "text": {{ ("CareCast, " ~ practice ~ ": " ~ flow.name ~ " run '" ~ flow_run.name ~ "' ("
              ~ channels | join(", ") ~ ") " ~ state.type | lower ~ ": " ~ reason) | tojson }}
}"""


def automation_name(tag: str) -> str:
    """The failure automation's name for the practice whose deployments carry ``tag``: stable, one per practice."""
    return f"carecast {tag}: notify on failure"


def watch_deployments(settings: Settings, tag: str) -> UUID | None:
    """Create or update (by :func:`automation_name`) the server's automation that POSTs :data:`PAYLOAD` to
    ``notify.webhook`` whenever a run of a deployment tagged ``tag`` fails or crashes, whatever its state's name
    (Failed, TimedOut, Crashed). The address is kept in the Webhook block ``carecast-<tag>-notify``, as a secret.

    Returns the automation's id; None, registering nothing, when the practice configured no webhook.
    Raises prefect.exceptions.PrefectHTTPStatusError when the server refuses the block or the automation.
    """
    if settings.notify.webhook is None:
        return None
    block_id = Webhook(
        url=SecretStr(str(settings.notify.webhook)),
        # The server posts the rendered payload as text: say it is JSON, as Slack and Teams require.
        headers=SecretDict({"Content-Type": "application/json"}),
    ).save(f"carecast-{tag}-notify", overwrite=True)
    constants = (
        f"{{%- set practice = {json.dumps(settings.practice.name)} -%}}"
        f"{{%- set every_channel = {json.dumps(list(settings.channels))} -%}}"
    )
    automation = Automation(
        name=automation_name(tag),
        description=f"{settings.practice.name}: POST a failed or crashed run of its deployments to notify.webhook.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.*"},
            match={"prefect.resource.id": "prefect.flow-run.*", "prefect.state-type": ["FAILED", "CRASHED"]},
            # Deployment runs only: a run without one is reported by its hook.
            match_related=[
                {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{tag}"},
                {"prefect.resource.role": "deployment"},
            ],
        ),
        actions=[CallWebhook(block_document_id=block_id, payload=constants + PAYLOAD)],
    )
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(automation.name)
    if existing:
        automation.id = existing[0].id
        automation.update()
    else:
        automation.create()  # sets automation.id
    return automation.id


def notify_failure(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    """POST what failed to the practice's webhook, if it configured one, unless the run belongs to a deployment
    (the automation of :func:`watch_deployments` reports those); a hook never raises (it logs instead)."""
    if flow_run.deployment_id is not None:
        return
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
        "deployment": None,
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
