"""Tell the practice when a run failed or crashed: a JSON POST to ``notify.webhook`` naming practice, channel, reason.

Two senders, one payload (``practice``, ``slug`` (as in its deployments' names), ``flow``, ``deployment``,
``flow_run``, ``flow_run_id``, ``state``, ``channels``, ``reason``, and a ``text`` line, so a Slack or Teams incoming
webhook shows it as a message):

- Runs of ``carecast serve``'s deployments: a Prefect automation on the server, registered by
  :func:`watch_deployments`, calls a Webhook block holding the address. It reacts to the run's Failed or Crashed
  event, so it also reports what no hook can: a suspension for approval that timed out (the server fails the run)
  and a run whose process was killed (``carecast serve`` marks it Crashed).
- Runs without a deployment (``carecast run``, whose embedded server runs no automations): :func:`notify_failure`,
  the ``on_failure`` and ``on_crashed`` hook of every CareCast flow. It skips deployment runs, so nothing is
  reported twice.

Without ``notify.webhook`` the route still works: the hook emails the practice's staff address through the
newsletter's SMTP login, or writes the email to ``<outbox>/notifications/`` (:mod:`carecast.alerts`), for every run.
Drafts refused by the rules or held for possible PHI do not fail a run; :func:`tell_staff` tells staff about each
once, by the same route (the webhook's payload then has the state ``NOTICE``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import requests
from prefect import Flow, get_run_logger, task
from prefect.automations import Automation, CallWebhook, EventTrigger
from prefect.blocks.webhook import Webhook
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.logging import get_logger
from prefect.logging.loggers import flow_run_logger
from prefect.states import Failed, State
from prefect.types import SecretDict
from pydantic import SecretStr

from carecast import alerts
from carecast.config import Settings
from carecast.errors import CareCastError, ConfigError
from carecast.practice import load_settings, open_practice

logger = get_logger("carecast.notify")
P = ParamSpec("P")
R = TypeVar("R")

#: The automation's payload, rendered by the server (Jinja, sandboxed) for the run whose event fired it; set
#: ``practice``, ``slug`` and ``every_channel`` (an ingest run's channels) before it. The state comes from the event,
#: not the run, which may have moved on by the time the action runs.
PAYLOAD = """\
{%- set state = event.payload.validated_state -%}
{%- set channels = flow_run.parameters.channels or every_channel -%}
{%- set reason = state.message or state.type -%}
{
  "practice": {{ practice | tojson }},
  "slug": {{ slug | tojson }},
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
        f"{{%- set slug = {json.dumps(settings.slug)} -%}}"
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
    return save_automation(automation)


def save_automation(automation: Automation) -> UUID | None:
    """Create ``automation``, or update the one of the same name in place (its id kept); returns its id.

    Raises prefect.exceptions.PrefectHTTPStatusError when the server refuses it.
    """
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(automation.name)
    if existing:
        automation.id = existing[0].id
        automation.update()
    else:
        automation.create()  # sets automation.id
    return automation.id


def post_notice(settings: Settings, notice: alerts.Notice) -> str:
    """POST a notice of refused or held drafts to ``notify.webhook`` (state ``NOTICE``, the same payload keys as a
    failure); returns where it went. Never raises: a webhook that fails is logged, and the email route used."""
    payload = {
        "practice": settings.practice.name,
        "slug": settings.slug,
        "state": "NOTICE",
        "reason": "; ".join(notice.lines),
        "text": f"{notice.subject}: " + "; ".join(notice.lines),
    }
    try:
        requests.post(str(settings.notify.webhook), json=payload, timeout=10).raise_for_status()
    except requests.RequestException as exc:
        logger.error("could not notify %s: %s", settings.notify.webhook, exc)
        return alerts.send(settings, notice)
    return "notify.webhook"


def notify_failure(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Say in one line, as the run's last log line, why it failed; then tell the practice: POST to its webhook,
    unless the run belongs to a deployment (the automation of :func:`watch_deployments` reports those); without a
    webhook, email its staff address or write to the outbox (:mod:`carecast.alerts`), deployed runs included (no
    automation exists then). A hook never raises (it logs instead)."""
    reason = state.message or state.type.value
    parameters = flow_run.parameters
    config = parameters.get("practice") or parameters.get("config_path")
    try:
        settings = load_settings(Path(str(config)))
    except ConfigError as exc:
        logger.error("cannot notify about %s: %s", flow_run.name, exc)
        return
    channels = parameters.get("channels") or list(settings.channels)
    where = _tell(settings, flow, flow_run, state, channels, reason)
    run_logger = flow_run_logger(flow_run, flow)
    run_logger.error(
        "%s %s: %s%s", flow_run.name, state.type.value.lower(), reason.splitlines()[0] if reason else "", where
    )


def _tell(
    settings: Settings, flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any], channels: list[str], reason: str
) -> str:
    """Tell the practice about a failed run by the route it has; returns ``" (told: where)"`` or ``""``."""
    text = (
        f"CareCast, {settings.practice.name}: {flow.name} run {flow_run.name!r} ({', '.join(channels)}) "
        f"{state.type.value.lower()}: {reason}"
    )
    if settings.notify.webhook is None:
        notice = alerts.Notice(f"CareCast, {settings.practice.name}: {flow.name} run {state.type.value}", (text,))
        return f" (told: {alerts.send(settings, notice)})"
    if flow_run.deployment_id is not None:
        return ""  # the server's automation posts it
    payload = {
        "practice": settings.practice.name,
        "slug": settings.slug,
        "flow": flow.name,
        "deployment": None,
        "flow_run": flow_run.name,
        "flow_run_id": str(flow_run.id),
        "state": state.type.value,
        "channels": channels,
        "reason": reason,
        "text": text,
    }
    try:
        requests.post(str(settings.notify.webhook), json=payload, timeout=10).raise_for_status()
    except requests.RequestException as exc:
        logger.error("could not notify %s about %s: %s", settings.notify.webhook, flow_run.name, exc)
        return ""
    return " (told: notify.webhook)"


@task(task_run_name="tell staff", cache_policy=NO_CACHE)
def tell_staff(config_path: str, what: str, rows: list[dict[str, Any]]) -> None:
    """Tell staff, once each, about drafts refused by the rules, with why: by
    ``notify.webhook`` when set, else by email to the practice's address, or the outbox (:mod:`carecast.alerts`).
    A failed run is told by :func:`carecast_flows.notify.notify_failure` (or the server's automation)."""
    with open_practice(config_path) as practice:
        settings, ledger = practice.settings, practice.ledger
        latest = {(row["channel"], tuple(row.get("items", ()))): row for row in rows}  # a draft's last row
        fresh = [
            row
            for row in alerts.untold(ledger, list(latest.values()))
            # Holds fail the run and are told by the failure route; staff's own rejections are known to them.
            if row["state"] == "rejected" and not row.get("decided")
        ]
        notice = alerts.notice_of(settings, what, fresh)
        if notice is None:
            return
        where = post_notice(settings, notice) if settings.notify.webhook else alerts.send(settings, notice)
        alerts.mark_told(ledger, fresh)
    get_run_logger().warning("told staff (%s): %s", where, "; ".join(notice.lines))


def said(body: Callable[P, R]) -> Callable[P, R]:
    """Wrap a flow's body so that a CareCastError (a wrong config, a ledger that cannot be opened) ends the run
    Failed with its reason in one line, logged once, instead of a traceback as the last thing staff read."""

    @functools.wraps(body)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return body(*args, **kwargs)
        except CareCastError as exc:
            reason = " ".join(str(exc).split())
            get_run_logger().error("%s", reason)
            return Failed(message=reason)  # type: ignore[return-value]  # a flow may end in a state it returns

    return wrapper
