"""Drafts and approvals: one draft per channel, account and item set, and what staff or the rules decided."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from carecast.errors import LedgerError
from carecast.ledger.schema import DraftRow, DraftState, PublicationRow
from carecast.ledger.store import LedgerStore, inserted_keys
from carecast.model import Draft, now_utc


@dataclass(frozen=True)
class StoredDraft:
    id: int
    channel: str
    account: str
    state: DraftState
    draft: Draft
    reason: str | None
    created_at: datetime


def stored_draft(row: DraftRow) -> StoredDraft:
    return StoredDraft(
        id=row.id,
        channel=row.channel,
        account=row.account,
        state=row.state,  # type: ignore[arg-type]
        draft=Draft.from_json(row.body),
        reason=row.reason,
        created_at=row.created_at,
    )


def save_drafts_in(
    session: Session, account: str, drafts: Sequence[tuple[Draft, DraftState, str | None]], now: datetime
) -> list[DraftRow]:
    """:meth:`DraftLedger.save_draft` of each ``(draft, state, reason)`` in order, inside the caller's transaction,
    in a few statements whatever their number; returns each draft's row as it now stands."""
    bodies = [draft.to_json() for draft, _, _ in drafts]
    new = [
        {
            "channel": draft.channel,
            "account": account,
            "draft_key": draft.key,
            "state": state,
            "body": body,
            "reason": reason,
            "created_at": now,
            "updated_at": now,
        }
        for (draft, state, reason), body in zip(drafts, bodies, strict=True)
    ]
    # A racing run may store the same draft first: then it is the earlier draft below.
    inserted = set(inserted_keys(session, DraftRow, new, ["channel", "account", "draft_key"]))
    rows = {
        (row.channel, row.draft_key): row
        for row in session.scalars(
            select(DraftRow).where(
                DraftRow.account == account,
                DraftRow.channel.in_({draft.channel for draft, _, _ in drafts}),
                DraftRow.draft_key.in_([draft.key for draft, _, _ in drafts]),
            )
        )
    }
    claimed = set(
        session.scalars(
            select(PublicationRow.draft_id).where(PublicationRow.draft_id.in_([row.id for row in rows.values()]))
        )
    )
    result = []
    for (draft, state, reason), body in zip(drafts, bodies, strict=True):
        row = rows[(draft.channel, draft.key)]
        result.append(row)
        key = (draft.channel, account, draft.key)
        if key in inserted:
            inserted.discard(key)  # the row this draft made (a later draft of the same items replaces it below)
            continue
        if row.id in claimed:
            continue
        # A held draft is checked again with its new text (the PHI check holds it again if need be).
        if row.state in ("pending", "refused", "held") or (row.state == "approved" and state != "pending"):
            row.body, row.state, row.reason, row.updated_at = body, state, reason, now
    return result


#: Where a refused draft keeps, in its measures, the fingerprint of what it was rendered from.
RENDERED_FROM = "rendered_from"


class DraftLedger(LedgerStore):
    """Drafts: saved per item set, decided by staff or the rules, dropped when their items are passed over."""

    def save_draft(self, draft: Draft, account: str, state: DraftState, reason: str | None = None) -> int:
        """Store ``draft`` for its channel and account, replacing an earlier draft of the same items.

        A draft that is already claimed for publication, or that staff decided on (rejected, expired), is kept as
        it is: an edit of the item after that never changes what was or will be sent. An unclaimed approved draft
        takes an edit's new text, or becomes ``refused`` when the edit breaks a rule (a withdrawn authorization).
        """
        with self._session() as session, session.begin():
            return save_drafts_in(session, account, [(draft, state, reason)], now_utc())[0].id

    def drafts(self, channel: str | None = None, states: Sequence[DraftState] | None = None) -> list[StoredDraft]:
        """Drafts (of one channel, in some states), oldest first."""
        query = select(DraftRow)
        if channel is not None:
            query = query.where(DraftRow.channel == channel)
        if states is not None:
            query = query.where(DraftRow.state.in_(states))
        with self._session() as session:
            return [stored_draft(row) for row in session.scalars(query.order_by(DraftRow.id))]

    def draft(self, draft_id: int) -> StoredDraft:
        """One draft; raises LedgerError when there is none with that id."""
        with self._session() as session:
            row = session.get(DraftRow, draft_id)
            if row is None:
                raise LedgerError(f"no draft {draft_id}")
            return stored_draft(row)

    def refusals(self, channel: str, account: str) -> dict[str, str]:
        """The reasons the channel's rules refused drafts, by draft key."""
        query = select(DraftRow.draft_key, DraftRow.reason).where(
            DraftRow.channel == channel, DraftRow.account == account, DraftRow.state == "refused"
        )
        with self._session() as session:
            return {key: reason or "" for key, reason in session.execute(query)}

    def refusal_fingerprints(self, channel: str, account: str) -> dict[str, str]:
        """What each refused draft of the channel was rendered from (``rendered_from`` in its measures), by draft key;
        drafts refused without one (at publish time, or before fingerprints were kept) are left out."""
        query = select(DraftRow.draft_key, DraftRow.body).where(
            DraftRow.channel == channel, DraftRow.account == account, DraftRow.state == "refused"
        )
        with self._session() as session:
            return {
                key: body["measures"][RENDERED_FROM]
                for key, body in session.execute(query)
                if RENDERED_FROM in body.get("measures", {})
            }

    def set_draft_state(self, draft_id: int, state: DraftState, reason: str | None = None) -> None:
        """Approve, reject or expire a draft not yet claimed.

        Raises LedgerError if it is unknown or claimed, when approving a draft that expired (its slot passed, and a
        draft is never sent late) or one held for possible PHI (it is released with a reason instead).
        """
        with self._session() as session, session.begin():
            row = session.get(DraftRow, draft_id)
            if row is None:
                raise LedgerError(f"no draft {draft_id}")
            if row.state == "expired" and state == "approved":
                raise LedgerError(f"draft {draft_id} expired when its slot passed; it is never sent late")
            if row.state == "held" and state == "approved":
                raise LedgerError(
                    f"draft {draft_id} is held for possible PHI: fix its text, or release it with "
                    f"`carecast release {draft_id} --reason ...`"
                )
            if session.scalar(select(PublicationRow.id).where(PublicationRow.draft_id == draft_id)) is not None:
                raise LedgerError(f"draft {draft_id} is already claimed for publication")
            row.state, row.reason, row.updated_at = state, reason, now_utc()

    def forget_drafts(self, channel: str, account: str, keys: Iterable[str]) -> None:
        """Drop the channel's unclaimed pending, held or approved drafts with these keys (their items were skipped)."""
        self._forget(channel, account, DraftRow.draft_key.in_(list(keys)))

    def forget_pending(self, channel: str, account: str, keep: Iterable[str]) -> None:
        """Drop unclaimed pending, held or approved drafts of a channel whose item set is not in ``keep``.

        A digest's item set changes as items arrive: the draft for yesterday's set must not be sent beside today's.
        """
        self._forget(channel, account, DraftRow.draft_key.not_in(list(keep)))

    def _forget(self, channel: str, account: str, which: ColumnElement[bool]) -> None:
        claimed = select(PublicationRow.draft_id)
        with self._session() as session, session.begin():
            session.execute(
                delete(DraftRow).where(
                    DraftRow.channel == channel,
                    DraftRow.account == account,
                    DraftRow.state.in_(("pending", "approved", "held")),
                    which,
                    DraftRow.id.not_in(claimed),
                )
            )
