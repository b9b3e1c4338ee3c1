"""PHI holds: drafts the PHI check stopped, with their findings, and the staff releases that let them go."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from carecast.errors import LedgerError
from carecast.ledger.drafts import save_drafts_in
from carecast.ledger.schema import ITEM_PATIENT, DraftRow, DraftState, PhiHoldRow, PublicationRow
from carecast.ledger.store import LedgerStore
from carecast.model import Draft, now_utc
from carecast.phi import Finding


@dataclass(frozen=True)
class PhiHold:
    """One hold of a draft's text: what was found, and the release, if any (who, when, why)."""

    draft_id: int
    fingerprint: str
    findings: list[Finding]
    held_at: datetime
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None


#: Drafts written per statement by ``save_drafts`` (all in its one transaction).
SAVED_TOGETHER = 500


@dataclass(frozen=True)
class DraftSave:
    """One draft for :meth:`HoldLedger.save_drafts`: its state and reason, and what the PHI check found in its text
    (``hold``: the text's fingerprint and the findings) when it must be held."""

    draft: Draft
    state: DraftState
    reason: str | None = None
    hold: tuple[str, list[Finding]] | None = None


@dataclass(frozen=True)
class SavedDraft:
    """What :meth:`HoldLedger.save_drafts` did with one draft."""

    id: int
    held: bool
    state: DraftState


def hold_in(session: Session, draft: DraftRow, fingerprint: str, findings: list[Finding], now: datetime) -> bool:
    """:meth:`HoldLedger.hold` of ``draft``'s row inside the caller's transaction."""
    if session.scalar(select(PublicationRow.id).where(PublicationRow.draft_id == draft.id)) is not None:
        return False  # what is claimed went or goes out as it was checked then
    row = session.scalars(
        select(PhiHoldRow).where(PhiHoldRow.draft_id == draft.id, PhiHoldRow.fingerprint == fingerprint)
    ).one_or_none()
    if row is not None and row.released_at is not None:
        if draft.state == "held":
            draft.state, draft.reason, draft.updated_at = "approved", _released(row), now
        return False
    stored = {"findings": [finding.to_json() for finding in findings]}
    if row is None:
        session.add(
            PhiHoldRow(draft_id=draft.id, fingerprint=fingerprint, findings=stored, held_at=now, released_at=None)
        )
    else:
        row.findings = stored
    if draft.state in ("pending", "approved", "held"):
        draft.state, draft.updated_at = "held", now
        draft.reason = "possible PHI: " + "; ".join(finding.summary for finding in findings)
    return draft.state == "held"


class HoldLedger(LedgerStore):
    """Holds and releases of drafts with possible PHI, and the patients the authorizations name."""

    def hold(self, draft_id: int, fingerprint: str, findings: list[Finding]) -> bool:
        """Hold draft ``draft_id`` (not yet claimed) for ``findings`` in its text ``fingerprint``; return whether it
        is held. A text staff released already is not held again: the draft is approved instead.

        Raises LedgerError for an unknown draft.
        """
        with self._session() as session, session.begin():
            draft = session.get(DraftRow, draft_id)
            if draft is None:
                raise LedgerError(f"no draft {draft_id}")
            return hold_in(session, draft, fingerprint, findings, now_utc())

    def save_drafts(self, account: str, saves: Sequence[DraftSave]) -> list[SavedDraft]:
        """Store each of ``saves`` as :meth:`save_draft` and, with findings, :meth:`hold` would, all in one
        transaction (one commit, not one or two per draft); return, in order, each draft's id, whether it is held,
        and its state once saved (staff may have decided on it already). Raises LedgerError.
        """
        now = now_utc()
        saved = []
        with self._session() as session, session.begin():
            entries = [(save.draft, save.state, save.reason) for save in saves]
            rows = [  # in pieces: the statements' IN lists stay short
                row
                for start in range(0, len(entries), SAVED_TOGETHER)
                for row in save_drafts_in(session, account, entries[start : start + SAVED_TOGETHER], now)
            ]
            for save, row in zip(saves, rows, strict=True):
                held = save.hold is not None and hold_in(session, row, *save.hold, now)
                saved.append(SavedDraft(row.id, held, row.state))  # type: ignore[arg-type]
        return saved

    def released(self, draft_id: int, fingerprint: str) -> bool:
        """Whether staff released this text of the draft."""
        with self._session() as session:
            return (
                session.scalar(
                    select(PhiHoldRow.id).where(
                        PhiHoldRow.draft_id == draft_id,
                        PhiHoldRow.fingerprint == fingerprint,
                        PhiHoldRow.released_at.is_not(None),
                    )
                )
                is not None
            )

    def release(self, draft_id: int, reason: str, by: str) -> None:
        """Release a held draft with ``reason``, recorded with ``by`` and the time: it is approved and goes out at
        its slot.

        Raises LedgerError when the draft is unknown or not held, or ``reason`` or ``by`` is empty.
        """
        if not reason.strip() or not by.strip():
            raise LedgerError(f"releasing draft {draft_id} needs a reason and a name, for the record")
        now = now_utc()
        with self._session() as session, session.begin():
            draft = session.get(DraftRow, draft_id)
            if draft is None or draft.state != "held":
                raise LedgerError(f"draft {draft_id} is not held for possible PHI")
            row = session.scalars(
                select(PhiHoldRow).where(PhiHoldRow.draft_id == draft_id).order_by(PhiHoldRow.id.desc())
            ).first()
            if row is None:
                raise LedgerError(f"draft {draft_id} is held without a record of why")
            row.released_at, row.released_by, row.release_reason = now, by.strip(), reason.strip()
            draft.state, draft.reason, draft.updated_at = "approved", _released(row), now

    def holds(self, draft_id: int) -> list[PhiHold]:
        """Every hold of a draft, oldest first; the last is its current text's."""
        with self._session() as session:
            rows = session.scalars(
                select(PhiHoldRow).where(PhiHoldRow.draft_id == draft_id).order_by(PhiHoldRow.id)
            ).all()
        return [
            PhiHold(
                row.draft_id,
                row.fingerprint,
                [Finding.from_json(finding) for finding in row.findings["findings"]],
                row.held_at,
                row.released_at,
                row.released_by,
                row.release_reason,
            )
            for row in rows
        ]

    def known_patients(self) -> list[str]:
        """The patients the authorizations on file name (items' ``patient``), for the PHI check."""
        # Picked out by the database: decoding every item's JSON here made each publish run read the whole ledger.
        # ``ITEM_PATIENT``, the expression its index holds, so the planner reads the index.
        with self._session() as session:
            names = session.scalars(select(ITEM_PATIENT).where(ITEM_PATIENT.is_not(None)).distinct()).all()
        return sorted(name for name in names if name)


def _released(row: PhiHoldRow) -> str:
    return f"released by {row.released_by}: {row.release_reason}"
