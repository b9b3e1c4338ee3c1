"""What a run reports for each draft (:class:`Outcome`), and the PHI checks adapt, publish and decide share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from carecast.config import Settings
from carecast.ledger import Ledger
from carecast.model import ContentItem, Draft
from carecast.phi import Finding, PhiCheck
from carecast.recipients import chosen_by_care

OutcomeState = Literal[
    "published",
    "failed",
    "retry",
    "rejected",
    "skipped",
    "preview",
    "waiting",
    "approved",
    "expired",
    "unknown",
    "held",
]


@dataclass(frozen=True)
class Outcome:
    """What happened to one draft on one channel: the row of the run's summary table."""

    channel: str
    item_ids: tuple[str, ...]
    state: OutcomeState
    detail: str
    title: str = ""
    draft: Draft | None = None


def as_row(outcome: Outcome) -> dict[str, Any]:
    """The outcome as a row of a run's result (plain JSON: a flow's return value, the summary ``carecast run``
    prints)."""
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


def title_of(items: Sequence[ContentItem]) -> str:
    """How a run names a draft: its item's title, or the count and first title of a digest."""
    return items[0].title if len(items) == 1 else f"{len(items)} items: {items[0].title}, ..."


def phi_check(settings: Settings, ledger: Ledger) -> PhiCheck:
    """The PHI check for the practice, knowing every patient its authorizations name."""
    return PhiCheck.for_practice(settings, ledger.known_patients())


def care_findings(check: PhiCheck, settings: Settings, instance: str, draft: Draft) -> list[Finding]:
    """What a draft of a channel addressing people chosen by their care may not name at all (any condition or
    treatment, :meth:`PhiCheck.any_health`); nothing for any other channel."""
    return check.any_health(draft) if chosen_by_care(settings, instance) else []


def held_reason(draft_id: int | None, findings: Sequence[Finding]) -> str:
    """Why a draft is held, and what staff can do about it."""
    how = f"; fix its text or `carecast release {draft_id} --reason ...`" if draft_id is not None else ""
    return "held for possible PHI: " + "; ".join(finding.summary for finding in findings) + how
