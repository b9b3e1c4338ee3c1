"""Publications: claimed before anything is sent, then ``sent | failed | unknown``, with a multi-step send's progress.

A claim is kept fresh by the process sending it. One left untouched by a process that died mid-send is resumed by
a later run: what was never claimed is sent, the recipient or part in flight becomes ``unknown`` and the
publication waits for a person (``resolve``), never re-sent blindly. Only a transient failure may be claimed again,
by compare-and-set, so two workers never both retry it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from carecast.errors import AlreadyClaimed, LedgerError, StorageError
from carecast.ledger.drafts import StoredDraft, stored_draft
from carecast.ledger.schema import (
    DRAFT_DUE,
    DeliveryRow,
    DraftRow,
    PublicationItemRow,
    PublicationRow,
    PublicationState,
)
from carecast.ledger.status import StatusLedger
from carecast.ledger.store import touch_claim
from carecast.model import Receipt, now_utc

log = logging.getLogger(__name__)


#: Why a recipient or part claimed by a run that died is ``unknown``.
IN_FLIGHT = "the process died after claiming; the provider may have it"
Resolution = Literal["sent", "resend", "drop"]
#: What each resolution makes of an ``unknown`` delivery: sent; failed but claimable again; failed for good.
#: Why a recipient or part is sent again: staff resolved it ``--resend`` (a channel whose provider can be asked
#: checks first, so a recipient it has is not sent twice).
TO_RESEND = "resolved by staff: to be sent again"
_SETTLED: dict[str, dict[str, Any]] = {
    "sent": {"state": "sent", "error": "resolved by staff: the provider has it"},
    "resend": {"state": "failed", "transient": True, "error": TO_RESEND},
    "drop": {"state": "failed", "transient": False, "error": "resolved by staff: dropped"},
}


@contextmanager
def keep_claim_alive(ledger: PublicationLedger, publication_id: int, every: float) -> Iterator[None]:
    """Touch the claim every ``every`` seconds while the block runs: a slow send (one big message, a provider
    taking its time) is not taken for dead. A touch that fails is tried at the next beat."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                ledger.touch(publication_id)
            except (LedgerError, StorageError) as exc:
                log.warning("publication %d: its claim could not be kept fresh: %s", publication_id, exc)

    heart = threading.Thread(target=beat, name=f"claim-{publication_id}", daemon=True)
    heart.start()
    try:
        yield
    finally:
        stop.set()
        heart.join(timeout=every)


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


class PublicationLedger(StatusLedger):
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
        # Two lookups, neither scanning the channel's published drafts: the failed publications (by their state's
        # index), and the approved drafts never claimed (``ix_drafts_due``).
        retries = (
            select(DraftRow)
            .join(PublicationRow, PublicationRow.draft_id == DraftRow.id)
            .where(DraftRow.channel == channel, DraftRow.state == "approved", retry)
        )
        with self._session() as session:
            rows = list(session.scalars(retries))
            if not retries_only:
                rows += session.scalars(select(DraftRow).where(DraftRow.channel == channel, DRAFT_DUE))
        return [stored_draft(row) for row in sorted(rows, key=lambda row: row.id)]

    def claim(self, draft_id: int) -> int:
        """Claim a draft for sending, before anything is sent; return the publication id.

        Raises AlreadyClaimed when any of its items is already claimed or published on its channel and account
        (another run, worker or retry got there first) or the draft is gone (a racing run passed its items over);
        LedgerError when the draft is not approved.
        """
        with self._session() as session:
            draft = session.get(DraftRow, draft_id)
            if draft is None:
                raise AlreadyClaimed(f"draft {draft_id}", "removed by another run", [])
            if draft.state != "approved":
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
                draft.publication_id = publication.id  # no longer due, in the same transaction
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
        # A send slower than its claim's timeout was resumed and marked ``unknown`` meanwhile; its true outcome
        # still counts. Already in the state recorded: this is a retry of a write whose commit landed.
        with self._session() as session, session.begin():
            result = session.execute(
                update(PublicationRow)
                .where(PublicationRow.id == publication_id, PublicationRow.state.in_(("claimed", "unknown")))
                .values(**values)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return
            if (
                session.scalar(select(PublicationRow.state).where(PublicationRow.id == publication_id))
                != values["state"]
            ):
                raise LedgerError(f"publication {publication_id} is not claimed; its outcome was not recorded")

    def resume_stale(self, channel: str, older_than: timedelta) -> list[int]:
        """Take over the claims of ``channel`` untouched for ``older_than``: their sender died mid-send.

        A live sender touches its claim with every recipient and step, and its heartbeat (``keep_claim_alive``)
        in between, so only a dead one's claim goes stale. Each is taken by compare-and-set (two runs never resume
        the same one) and its recipients or parts claimed but never recorded become ``unknown`` (``IN_FLIGHT``):
        the provider may have them, so they are never sent again on their own. Returns the publication ids, now
        claimed by the caller, to send the rest of.
        """
        now = now_utc()
        cutoff = now - older_than
        taken = []
        with self._session() as session, session.begin():
            for publication_id in session.scalars(_stale(channel, cutoff)).all():
                result = session.execute(
                    update(PublicationRow)
                    .where(
                        PublicationRow.id == publication_id,
                        PublicationRow.state == "claimed",
                        PublicationRow.claimed_at < cutoff,
                    )
                    .values(claimed_at=now)
                )
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                session.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.publication_id == publication_id, DeliveryRow.state == "claimed")
                    .values(state="unknown", error=IN_FLIGHT, updated_at=now)
                )
                taken.append(publication_id)
        return taken

    def stale_claims(self, channel: str, older_than: timedelta) -> list[int]:
        """The publications :meth:`resume_stale` would take over now, taking none."""
        with self._session() as session:
            return list(session.scalars(_stale(channel, now_utc() - older_than)))

    def record_unknown(self, publication_id: int, error: str, receipt: Receipt | None = None) -> None:
        """Record that a person must settle the publication (``carecast resolve``): a recipient or part of it is
        ``unknown``. What did go out (``receipt``) is kept with it."""
        found = (
            {}
            if receipt is None
            else {"location": receipt.location, "provider_ids": {"ids": list(receipt.provider_ids)}}
        )
        self._finish(publication_id, state="unknown", error=error, transient=False, finished_at=now_utc(), **found)

    def touch(self, publication_id: int) -> None:
        """Keep a live claim fresh (nothing happens once it is no longer claimed)."""
        with self._session() as session, session.begin():
            touch_claim(session, publication_id)

    def publication_draft(self, publication_id: int) -> StoredDraft:
        """The draft a publication sends; raises LedgerError when there is no such publication."""
        with self._session() as session:
            row = session.scalars(
                select(DraftRow)
                .join(PublicationRow, PublicationRow.draft_id == DraftRow.id)
                .where(PublicationRow.id == publication_id)
            ).one_or_none()
            if row is None:
                raise LedgerError(f"no publication {publication_id}")
            return stored_draft(row)

    def resolve(
        self,
        publication_id: int,
        decision: Resolution,
        *,
        address: str | None = None,
        provider_id: str | None = None,
    ) -> int:
        """Settle what a person checked with the provider: ``sent`` (it has it), ``resend`` (it does not: send it
        again, once) or ``drop`` (never send it). Returns how many recipients or parts were settled.

        With ``address`` (a recipient, or ``part_address(n)``) that one; without, every ``unknown`` one of the
        publication, or the publication itself when it has none. Once nothing of it is ``unknown``, the next run
        finishes it (sends what is to be resent, records the outcome). Raises LedgerError when the publication is
        not ``unknown`` (still being sent, or settled), or ``address`` is not one of its unknown recipients.
        """
        now = now_utc()
        with self._session() as session, session.begin():
            publication = session.get(PublicationRow, publication_id)
            if publication is None or publication.state != "unknown":
                state = "no such publication" if publication is None else f"it is {publication.state}"
                raise LedgerError(f"publication {publication_id} has nothing to resolve: {state}")
            which = [DeliveryRow.publication_id == publication_id, DeliveryRow.state == "unknown"]
            if address is not None:
                which.append(DeliveryRow.address == address)
            values = dict(_SETTLED[decision], updated_at=now)
            if provider_id is not None and decision == "sent":
                values["provider_id"] = provider_id
            settled = session.execute(update(DeliveryRow).where(*which).values(**values))
            count = int(settled.rowcount)  # type: ignore[attr-defined]
            if address is not None and count == 0:
                raise LedgerError(f"publication {publication_id} has no unknown recipient or part {address!r}")
            left = session.scalar(
                select(DeliveryRow.id).where(
                    DeliveryRow.publication_id == publication_id, DeliveryRow.state == "unknown"
                )
            )
            if left is not None:
                return count
            if count == 0 and decision != "resend":
                # Nothing of it was in flight alone: the publication itself went out, or is given up.
                publication.state = "sent" if decision == "sent" else "failed"
                publication.transient = False
                publication.error = f"resolved by staff: {decision}"
                publication.finished_at = now
                return 1
            publication.state, publication.transient, publication.not_before = "failed", True, None
            publication.error = f"resolved by staff ({decision}); the next run finishes it"
            return max(count, 1)

    def publications(self, ids: Sequence[int] | None = None) -> list[PublicationRecord]:
        """Every publication (or those with these ids), oldest first, with its items."""
        query = _PUBLICATION_COLUMNS if ids is None else _PUBLICATION_COLUMNS.where(PublicationRow.id.in_(ids))
        with self._session() as session:
            rows = session.execute(query.order_by(PublicationRow.id)).all()
            return _records(session, rows, None if ids is None else PublicationItemRow.publication_id.in_(ids))

    def stream_publications(
        self,
        *,
        channel: str | None = None,
        state: PublicationState | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        page: int = 1000,
    ) -> Iterator[PublicationRecord]:
        """Publications (of ``channel``, in ``state``, claimed or finished since ``since``) oldest first, read a page
        of ``page`` rows at a time (keyset on the id, plain rows, no ORM objects): the first come at once and memory
        stays flat however large the ledger. With ``limit``, only the newest ``limit`` of them.
        """
        filters = self._status_filters(channel, state, since, limit)
        if filters is None:
            return
        after = 0
        while True:
            query = _PUBLICATION_COLUMNS.where(*filters, PublicationRow.id > after).order_by(PublicationRow.id)
            with self._session() as session:
                rows = session.execute(query.limit(page)).all()
                span = PublicationItemRow.publication_id.between(rows[0].id, rows[-1].id) if rows else None
                records = _records(session, rows, span)
            yield from records
            if len(records) < page:
                return
            after = records[-1].id

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


_PUBLICATION_COLUMNS = select(
    PublicationRow.id,
    PublicationRow.channel,
    PublicationRow.account,
    PublicationRow.state,
    PublicationRow.claimed_at,
    PublicationRow.finished_at,
    PublicationRow.location,
    PublicationRow.provider_ids,
    PublicationRow.error,
    PublicationRow.transient,
)


def _stale(channel: str, cutoff: datetime) -> Select[int]:
    """The ids of the channel's claims untouched since ``cutoff``."""
    return select(PublicationRow.id).where(
        PublicationRow.channel == channel, PublicationRow.state == "claimed", PublicationRow.claimed_at < cutoff
    )


def _records(
    session: Session, rows: Sequence[Sequence[Any]], links: ColumnElement[bool] | None
) -> list[PublicationRecord]:
    """The records of these publication rows (``_PUBLICATION_COLUMNS``), each with its items (those of the
    publications ``links`` selects, or all); a range or the ids, never one bound parameter per row."""
    if not rows:
        return []
    items: dict[int, list[str]] = {}
    query = select(PublicationItemRow.publication_id, PublicationItemRow.item_id)
    for publication_id, item_id in session.execute(query if links is None else query.where(links)):
        items.setdefault(publication_id, []).append(item_id)
    return [
        PublicationRecord(
            id,
            channel,
            account,
            sorted(items.get(id, [])),
            state,
            claimed_at,
            finished_at,
            location,
            list((provider_ids or {}).get("ids", [])),
            error,
            transient,
        )
        # Unpacked in _PUBLICATION_COLUMNS order: reading a million rows by attribute name costs seconds.
        for id, channel, account, state, claimed_at, finished_at, location, provider_ids, error, transient in rows
    ]
