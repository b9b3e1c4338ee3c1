"""The ``review`` flow (deployment ``review/<practice>``): decide on drafts any time, ahead of their slot.

Staff press **Run** on the deployment; the run lists every draft waiting for approval, held for possible PHI or
refused by the rules across the practice's channels, previews each (artifacts ``<practice>-draft-<id>``), and
suspends with a form: per draft *approve* (its text editable), *reject* (with a reason), *release* (a held draft,
with a reason and a name) or *wait*. Refused drafts are listed with their reason, to be mended in the item or the
config. Resumed, the run starts again from the top (nothing it does before the form changes the ledger), applies
the decisions through :mod:`carecast.review`, and refreshes the calendar. An approved draft goes out at its slot.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field

from carecast import review as core_review
from carecast.config import DEFAULT_CONFIG
from carecast.errors import CareCastError
from carecast.practice import open_practice
from carecast_flows import artifacts
from carecast_flows import secrets as _secrets  # noqa: F401  registers {block: ...} credentials
from carecast_flows.approvals import draft_form
from carecast_flows.calendar import refresh_calendar
from carecast_flows.notify import said
from carecast_flows.runs import HOOKS, Row, _name_run, _quiet_if_the_console_is_gone

#: How long the form stays open; then the run ends (the drafts stay as they were, to decide in a later run).
REVIEW_WAIT_SECONDS = 24 * 3600
STATE_WORDS = {"pending": "WAITING", "held": "HELD, possible PHI", "refused": "REFUSED"}


class ReviewDecision(BaseModel):
    """What staff decide about one draft in the review form."""

    decision: Literal["wait", "approve", "reject", "release"] = Field(
        "wait",
        description="approve: it goes out at its slot; reject: never sent (give a reason); release: a held draft "
        "may go out (give a reason and your name); wait: decide later",
    )
    text: str = Field(description="the text that goes out; edit it to change it (a thread's posts split by ---)")
    reason: str = Field("", description="why you reject it, or why a held draft may go out (kept in the ledger)")
    by: str = Field("", description="your name: recorded with a release")


def review_form(drafts: list[Row]) -> type[RunInput]:
    """The form of a review run: one :class:`ReviewDecision` per draft staff can decide on, its text filled in."""
    return draft_form(
        "Review",
        ReviewDecision,
        (draft for draft in drafts if draft["state"] in ("pending", "held")),
        title=lambda draft: f"{STATE_WORDS[draft['state']]}: {draft['channel']} #{draft['id']}: {draft['title']}",
        description=lambda draft: (
            f"slot {draft['slot']}; why: {draft['reason']}" + (f"; {draft['measures']}" if draft["measures"] else "")
        ),
    )


def form_description(drafts: list[Row]) -> str:
    """The markdown above the form: what to do, then each draft with its state, slot, reason and preview link."""
    lines = [
        "Decide on each draft below: **approve** (edit its text first if you like), **reject** with a reason, "
        "**release** a held draft with a reason and your name, or leave it on **wait**. Approved drafts go out at "
        "their slot. Refused drafts broke a channel's rule: fix the post or the configuration; they are drafted "
        "again by the next ingest run.",
        "",
    ]
    for draft in drafts:
        preview = f" — [preview]({draft['preview']})" if draft["preview"] else ""
        lines.append(
            f"- **{STATE_WORDS[draft['state']]}** {draft['channel']} #{draft['id']} {draft['title']} "
            f"(slot {draft['slot']}): {draft['reason']}{preview}"
        )
    return "\n".join(lines)


@task(task_run_name="list drafts", cache_policy=NO_CACHE)
def list_drafts(config_path: str) -> list[Row]:
    """Every draft waiting, held or recently refused, as rows; one preview artifact per draft with text."""
    with open_practice(config_path) as practice:
        settings, ledger = practice.settings, practice.ledger
        found = core_review.reviewable(settings, ledger)
        previews = [(ledger.draft(r.id), r.slot) for r in found if r.decidable]
        links = artifacts.draft_previews(settings, ledger, previews)
        return [
            {
                "id": r.id,
                "channel": r.channel,
                "state": r.state,
                "title": r.title,
                "text": r.text,
                "slot": artifacts.local(settings, r.slot) if r.decidable else "none (refused)",
                "reason": r.reason,
                "measures": r.measures,
                "preview": links.get(r.id, ""),
            }
            for r in found
        ]


@task(task_run_name="apply decisions", cache_policy=NO_CACHE)
def apply_decisions(config_path: str, decisions: dict[int, dict[str, str]]) -> list[Row]:
    """Apply each decision; one that cannot be applied (a missing reason, an edit over the limit) is reported with
    why, and the others are applied all the same."""
    rows: list[Row] = []
    with open_practice(config_path) as practice:
        for draft_id, decision in decisions.items():
            choice = decision["decision"]
            try:
                outcome = core_review.apply(
                    practice.settings,
                    practice.ledger,
                    draft_id,
                    choice,  # type: ignore[arg-type]
                    text=decision["text"],
                    reason=decision["reason"],
                    by=decision["by"],
                )
            except CareCastError as exc:
                get_run_logger().error("draft %d: %s not applied: %s", draft_id, choice, exc)
                rows.append({"id": draft_id, "decision": choice, "state": "not applied", "detail": str(exc)})
                continue
            state = "released" if choice == "release" and outcome.state == "approved" else outcome.state
            get_run_logger().info("draft %d: %s: %s", draft_id, state, outcome.detail)
            rows.append({"id": draft_id, "decision": choice, "state": state, "detail": outcome.detail})
    return rows


@flow(name="review", flow_run_name="review", log_prints=True, **HOOKS)
@said
def review(practice: str = str(DEFAULT_CONFIG)) -> dict[str, Any]:
    """Decide on the practice's drafts now, ahead of their slots: the run pauses with a form listing every draft
    waiting for approval, held for possible PHI or refused, each with its preview and why.

    Args:
        practice: the practice's configuration file (config/carecast.yaml), as the server sees it
    """
    _quiet_if_the_console_is_gone()
    drafts = list_drafts(practice)
    decidable = [draft for draft in drafts if draft["state"] in ("pending", "held")]
    logger = get_run_logger()
    decided: list[Row] = []
    context = FlowRunContext.get()
    deployed = context is not None and context.flow_run is not None and context.flow_run.deployment_id is not None
    if decidable and not deployed:
        # Only a deployment's run can be suspended and resumed: say how to decide instead.
        logger.warning("%d draft(s) to decide: carecast drafts / carecast approve ID", len(decidable))
    elif decidable:
        answer = suspend_flow_run(
            wait_for_input=review_form(drafts).with_initial_data(description=form_description(drafts)),
            timeout=REVIEW_WAIT_SECONDS,
        )
        decisions = {}
        for draft in decidable:
            decision = getattr(answer, f"draft_{draft['id']}", None)
            if isinstance(decision, ReviewDecision) and decision.decision != "wait":
                decisions[draft["id"]] = decision.model_dump()
        if decisions:
            decided = apply_decisions(practice, decisions)
    refresh_calendar(practice)
    counted = Counter(row["state"] for row in decided)
    refused = sum(draft["state"] == "refused" for draft in drafts)
    summary = ", ".join(f"{n} {state}" for state, n in counted.items()) or (
        "nothing to decide" if not decidable else "nothing decided"
    )
    _name_run(f"review: {summary}" + (f"; {refused} refused (see why)" if refused else ""))
    return {"drafts": drafts, "decisions": decided}
