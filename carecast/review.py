"""What staff decide on, any time ahead of a slot: every draft waiting for approval, held for possible PHI or
refused by the rules, each with the reason; and applying their decisions (approve, with edited text, reject with a
reason, release a held draft with a reason and a name).

Framework-free: the ``review`` flow (flows/review.py) shows these in a Prefect form; a script or a test can call
them directly. Nothing here sends: an approved draft goes out at its channel's next slot, by the publish run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from carecast import pipeline as core
from carecast.config import Settings
from carecast.errors import LedgerError
from carecast.ledger import Ledger, StoredDraft
from carecast.model import now_utc

#: How far back refused drafts are listed: older refusals were told about already and are history.
REFUSED_WITHIN = timedelta(days=14)

Choice = Literal["wait", "approve", "reject", "release"]


@dataclass(frozen=True)
class Reviewable:
    """One draft as staff see it in the review form: why it waits, is held or was refused, and when it goes."""

    id: int
    channel: str
    state: str
    title: str
    text: str
    slot: datetime | None
    reason: str
    measures: str
    findings: tuple[str, ...] = ()

    @property
    def decidable(self) -> bool:
        """Whether staff can decide on it (a refused draft broke a rule: its item or the config must change)."""
        return self.state in ("pending", "held")


def reason_of(stored: StoredDraft, findings: Sequence[str] = ()) -> str:
    """Why a draft waits, is held or was refused, in words staff act on."""
    if stored.state == "held":
        return stored.reason or ("held for possible PHI: " + "; ".join(findings))
    if stored.state == "pending":
        return "waiting for approval (review channel)"
    return stored.reason or stored.state


def reviewable(settings: Settings, ledger: Ledger, now: datetime | None = None) -> list[Reviewable]:
    """Every enabled channel's drafts waiting or held (oldest first), then those refused in the last
    :data:`REFUSED_WITHIN`, each with its slot and reason."""
    moment = now or now_utc()
    found: list[Reviewable] = []
    refused: list[Reviewable] = []
    for name in core.channel_names(settings):
        for stored, slot in core.waiting(settings, ledger, name):
            holds = ledger.holds(stored.id) if stored.state == "held" else []
            findings = tuple(finding.summary for finding in holds[-1].findings) if holds else ()
            found.append(_reviewable(ledger, stored, slot, findings))
        for stored in ledger.drafts(name, states=["refused"]):
            if stored.created_at >= moment - REFUSED_WITHIN:
                refused.append(_reviewable(ledger, stored, None, ()))
    return found + refused


def _reviewable(ledger: Ledger, stored: StoredDraft, slot: datetime | None, findings: tuple[str, ...]) -> Reviewable:
    return Reviewable(
        id=stored.id,
        channel=stored.channel,
        state=stored.state,
        title=core.title_of(ledger.items(stored.draft.item_ids)),
        text=core.editable_text(stored.draft),
        slot=slot,
        reason=reason_of(stored, findings),
        measures=core.describe_measures(stored.draft) if stored.draft.parts else "",
        findings=findings,
    )


def release(settings: Settings, ledger: Ledger, draft_id: int, reason: str, by: str) -> core.Outcome:
    """Release a draft held for possible PHI with ``reason`` and ``by`` recorded: it is approved for its slot.

    Raises LedgerError when the draft is not held, or the reason or name is missing.
    """
    if ledger.draft(draft_id).state != "held":
        raise LedgerError(f"draft {draft_id} is not held for possible PHI: approve or reject it instead")
    if not reason.strip():
        raise LedgerError(f"releasing draft {draft_id} needs a reason (e.g. the authorization's reference)")
    return core.decide(settings, ledger, draft_id, approve=True, reason=reason, by=by or "the review form")


def apply(
    settings: Settings, ledger: Ledger, draft_id: int, choice: Choice, *, text: str = "", reason: str = "", by: str = ""
) -> core.Outcome:
    """Apply one decision of the review form to draft ``draft_id``; ``text`` replaces the draft's when approving.

    Raises RenderError when an edited text breaks the channel's rules; LedgerError when the draft is not waiting,
    a rejection or a release has no reason, or the draft missed its slot.
    """
    if choice == "release":
        return release(settings, ledger, draft_id, reason, by)
    if choice == "reject" and not reason.strip():
        raise LedgerError(f"rejecting draft {draft_id} needs a reason, for the record")
    return core.decide(
        settings,
        ledger,
        draft_id,
        approve=choice == "approve",
        text=text or None,
        reason=reason,
        by=by or "the review form",
    )
