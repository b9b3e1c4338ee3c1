"""Approvals inside a ``publish`` run: the drafts waiting for review, the form a paused run shows, and staff's
decisions applied.

A ``publish`` run started from a deployment suspends while drafts of a channel under ``approval: review`` wait for
their slot, with a form listing each draft (approve, reject, edited text) and a preview artifact of each (see
:mod:`carecast_flows.pipeline`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field, create_model

from carecast import pipeline as core
from carecast.errors import CareCastError
from carecast.model import now_utc
from carecast.outcomes import as_row
from carecast.practice import open_practice
from carecast_flows import artifacts
from carecast_flows.runs import Row

#: How long a run waits for staff on a channel without a schedule (any run publishes there).
UNSCHEDULED_WAIT = timedelta(days=1)


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
            rows.append(as_row(outcome) | {"decided": True})
    return rows


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
