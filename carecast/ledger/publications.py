"""Publications: claimed before anything is sent, then ``sent | failed | unknown``, with a multi-step send's progress.

A publication left ``claimed`` by a process that died mid-send becomes ``unknown`` and waits for a person, never
re-sent blindly. Only a transient failure may be claimed again, by compare-and-set, so two workers never both retry it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from carecast.errors import AlreadyClaimed, LedgerError
from carecast.ledger.drafts import StoredDraft, stored_draft
from carecast.ledger.schema import DeliveryRow, DraftRow, PublicationItemRow, PublicationRow, PublicationState
from carecast.ledger.store import LedgerStore, touch_claim
from carecast.model import Receipt, now_utc


@dataclass(frozen=True)
class PublicationRecord:
    """One publication as ``carecast status`` shows it."""

    id: int
    channel: str
    account: str
    item_ids: list[str]
    state: PublicationState
    claimed_at: datetime
    finished_at: datetime | None
    location: str | None
    provider_ids: list[str]
    error: str | None
    transient: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "item_ids": self.item_ids,
            "channel": self.channel,
            "account": self.account,
            "state": self.state,
            "when": (self.finished_at or self.claimed_at).isoformat(),
            "receipt": {"location": self.location, "provider_ids": self.provider_ids} if self.location else None,
            "error": self.error,
        }


class PublicationLedger(LedgerStore):
    """Claims, outcomes and progress of publications."""

    def due(self, channel: str, now: datetime | None = None, *, retries_only: bool = False) -> list[StoredDraft]:
        """Approved drafts of ``channel`` with no publication yet, or whose last attempt failed transiently and
        may be tried again at ``now`` (its ``not_before`` passed); with ``retries_only``, only the latter."""
        moment = now or now_utc()
        retry = (
            (PublicationRow.state == "failed")
            & PublicationRow.transient
            & (PublicationRow.not_before.is_(None) | (PublicationRow.not_before <= moment))
        )
        query = (
            select(DraftRow)
            .outerjoin(PublicationRow, PublicationRow.draft_id == DraftRow.id)
            .where(DraftRow.channel == channel, DraftRow.state == "approved")
            .where(retry if retries_only else (PublicationRow.id.is_(None) | retry))
            .order_by(DraftRow.id)
        )
        with self._session() as session:
            rows = session.scalars(query).all()
        return [stored_draft(row) for row in rows]

    def claim(self, draft_id: int) -> int:
        """Claim a draft for sending, before anything is sent; return the publication id.

        Raises AlreadyClaimed when any of its items is already claimed or published on its channel and account
        (another run, worker or retry got there first), LedgerError when the draft is unknown or not approved.
        """
        with self._session() as session:
            draft = session.get(DraftRow, draft_id)
            if draft is None or draft.state != "approved":
                raise LedgerError(f"draft {draft_id} is not approved")
            item_ids = list(draft.body["item_ids"])
            existing = session.scalars(select(PublicationRow).where(PublicationRow.draft_id == draft_id)).one_or_none()
            if existing is not None:
                # Only a transient failure is retried, and only by the one worker whose compare-and-set wins.
                result = session.execute(
                    update(PublicationRow)
                    .where(
                        PublicationRow.id == existing.id,
                        PublicationRow.state == "failed",
                        PublicationRow.transient.is_(True),
                    )
                    .values(state="claimed", claimed_at=now_utc(), error=None)
                )
                session.commit()
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise AlreadyClaimed(draft.channel, draft.account, item_ids)
                return existing.id
            publication = PublicationRow(
                draft_id=draft_id,
                channel=draft.channel,
                account=draft.account,
                state="claimed",
                claimed_at=now_utc(),
                transient=False,
            )
            session.add(publication)
            try:
                session.flush()
                session.add_all(
                    PublicationItemRow(
                        publication_id=publication.id, item_id=item_id, channel=draft.channel, account=draft.account
                    )
                    for item_id in item_ids
                )
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                raise AlreadyClaimed(draft.channel, draft.account, item_ids) from exc
            return publication.id

    def record_sent(self, publication_id: int, receipt: Receipt) -> None:
        self._finish(
            publication_id,
            state="sent",
            location=receipt.location,
            provider_ids={"ids": list(receipt.provider_ids)},
            finished_at=receipt.sent_at,
        )

    def record_failed(
        self, publication_id: int, error: str, *, transient: bool, not_before: datetime | None = None
    ) -> None:
        self._finish(
            publication_id,
            state="failed",
            error=error,
            transient=transient,
            not_before=not_before if transient else None,
            finished_at=now_utc(),
        )

    def _finish(self, publication_id: int, **values: Any) -> None:
        # A send slower than the stale-claim sweep was marked ``unknown`` meanwhile; its true outcome still counts.
        with self._session() as session, session.begin():
            result = session.execute(
                update(PublicationRow)
                .where(PublicationRow.id == publication_id, PublicationRow.state.in_(("claimed", "unknown")))
                .values(**values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise LedgerError(f"publication {publication_id} is not claimed; its outcome was not recorded")

    def mark_stale_claims(self, older_than: timedelta, channel: str | None = None) -> list[int]:
        """Turn claims (of ``channel``) untouched for ``older_than`` into ``unknown``: the sender died mid-send.

        Returns their ids, for a person to check with the provider; they are never re-sent blindly. A send that is
        alive touches its claim with every recipient and every step, so a long batch is not taken for dead.
        """
        cutoff = now_utc() - older_than
        query = select(PublicationRow.id).where(PublicationRow.state == "claimed", PublicationRow.claimed_at < cutoff)
        if channel is not None:
            query = query.where(PublicationRow.channel == channel)
        with self._session() as session, session.begin():
            ids = list(session.scalars(query))
            if ids:
                session.execute(update(PublicationRow).where(PublicationRow.id.in_(ids)).values(state="unknown"))
                # A recipient claimed by a process that died may or may not have been sent to: a person decides.
                session.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.publication_id.in_(ids), DeliveryRow.state == "claimed")
                    .values(state="unknown")
                )
        return ids

    def publications(self, ids: Sequence[int] | None = None) -> list[PublicationRecord]:
        """Every publication (or those with these ids), oldest first, with its items."""
        query, links_query = (
            select(PublicationRow),
            select(PublicationItemRow.publication_id, PublicationItemRow.item_id),
        )
        if ids is not None:
            query = query.where(PublicationRow.id.in_(ids))
            links_query = links_query.where(PublicationItemRow.publication_id.in_(ids))
        with self._session() as session:
            rows = session.scalars(query.order_by(PublicationRow.id)).all()
            links = session.execute(links_query).all()
        items: dict[int, list[str]] = {}
        for publication_id, item_id in links:
            items.setdefault(publication_id, []).append(item_id)
        return [
            PublicationRecord(
                id=row.id,
                channel=row.channel,
                account=row.account,
                item_ids=sorted(items.get(row.id, [])),
                state=row.state,  # type: ignore[arg-type]
                claimed_at=row.claimed_at,
                finished_at=row.finished_at,
                location=row.location,
                provider_ids=list((row.provider_ids or {}).get("ids", [])),
                error=row.error,
                transient=row.transient,
            )
            for row in rows
        ]

    def progress(self, publication_id: int) -> dict[str, Any]:
        """What the publication's earlier attempts recorded (empty at first)."""
        with self._session() as session:
            row = session.get(PublicationRow, publication_id)
            if row is None:
                raise LedgerError(f"no publication {publication_id}")
            return dict(row.progress or {})

    def save_progress(self, publication_id: int, progress: dict[str, Any]) -> None:
        """Record a step of a multi-step send as soon as it is done, before the next step is tried."""
        with self._session() as session, session.begin():
            session.execute(update(PublicationRow).where(PublicationRow.id == publication_id).values(progress=progress))
            touch_claim(session, publication_id)
