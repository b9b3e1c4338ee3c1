"""Deliveries: one row per recipient of a publication, claimed before sending so nobody gets a message twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from carecast.errors import AlreadyClaimed, LedgerError
from carecast.ledger.schema import DeliveryRow, DeliveryState
from carecast.ledger.store import LedgerStore, driver_marker, touch_claim
from carecast.model import now_utc


def part_address(number: int) -> str:
    """How a part of a multi-part publication (a thread's post ``number``) is claimed, as if it were a recipient."""
    return f"part {number}"


@dataclass(frozen=True)
class DeliveryRecord:
    """One recipient (or part, ``part_address``) of a publication and how its send ended."""

    address: str
    state: DeliveryState
    transient: bool
    not_before: datetime | None
    provider_id: str | None
    error: str | None
    attempts: int
    #: When the request now in flight or in doubt was claimed; None when not recorded (rows of older ledgers).
    claimed_at: datetime | None = None

    @property
    def is_part(self) -> bool:
        """Whether this is a part of a multi-part publication (``part_address``) rather than a recipient."""
        return self.address.startswith("part ")


#: Why a recipient claimed with their chunk was left for the next run untried: the chunk stopped before them.
NOT_TRIED = "not tried: the batch stopped before this recipient; left for the next run"


@dataclass(frozen=True)
class DeliveryOutcome:
    """How one claimed delivery ended, recorded with others of its chunk by ``finish_deliveries``; ``unknown`` when
    the provider may have it but cannot say (a person settles it, ``carecast resolve``)."""

    address: str
    state: Literal["sent", "failed", "deferred", "unknown"]
    provider_id: str | None = None
    error: str | None = None
    transient: bool = False
    not_before: datetime | None = None


class DeliveryLedger(LedgerStore):
    """Per-recipient claims and outcomes, and the provider's later word on them (status callbacks)."""

    def deliveries(self, publication_id: int, addresses: Sequence[str] | None = None) -> dict[str, DeliveryRecord]:
        """The recipients of a publication so far (those of ``addresses`` only, when given: a page of a long list),
        by address."""
        query = select(DeliveryRow).where(DeliveryRow.publication_id == publication_id)
        if addresses is not None:
            query = query.where(DeliveryRow.address.in_(addresses))
        with self._session() as session:
            rows = session.scalars(query).all()
        return {row.address: _delivery_record(row) for row in rows}

    def delivery_state_counts(self, publication_id: int) -> Counter[tuple[str, bool]]:
        """How many of a publication's deliveries are in each ``(state, transient)``, counted by the database."""
        query = (
            select(DeliveryRow.state, DeliveryRow.transient, func.count())
            .where(DeliveryRow.publication_id == publication_id)
            .group_by(DeliveryRow.state, DeliveryRow.transient)
        )
        with self._session() as session:
            return Counter({(state, bool(transient)): count for state, transient, count in session.execute(query)})

    def unknown_deliveries(self, publication_ids: Sequence[int] | None = None) -> dict[int, list[DeliveryRecord]]:
        """Recipients and parts whose send is ``unknown`` (their run died in flight), by publication id (of these
        publications only, when given)."""
        query = select(DeliveryRow).where(DeliveryRow.state == "unknown")
        if publication_ids is not None:
            query = query.where(DeliveryRow.publication_id.in_(publication_ids))
        with self._session() as session:
            rows = session.scalars(query.order_by(DeliveryRow.publication_id, DeliveryRow.address)).all()
        found: dict[int, list[DeliveryRecord]] = {}
        for row in rows:
            found.setdefault(row.publication_id, []).append(_delivery_record(row))
        return found

    def claim_delivery(self, publication_id: int, address: str, *, since: datetime | None = None) -> None:
        """Claim one recipient of a publication before sending to them; ``since``: the time of the claim of a request
        in doubt claimed again to be asked about (kept as its ``claimed_at``), else now.

        A deferred delivery, or one that failed transiently, is claimed again by compare-and-set. Raises
        AlreadyClaimed when the recipient was claimed, sent to, or failed for good.
        """
        now = now_utc()
        claimed_at = since or now
        with self._session() as session:
            retry = session.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.publication_id == publication_id,
                    DeliveryRow.address == address,
                    (DeliveryRow.state == "deferred") | ((DeliveryRow.state == "failed") & DeliveryRow.transient),
                )
                .values(state="claimed", attempts=DeliveryRow.attempts + 1, updated_at=now, claimed_at=claimed_at)
            )
            touch_claim(session, publication_id)
            if retry.rowcount == 1:  # type: ignore[attr-defined]
                session.commit()
                return
            session.add(
                DeliveryRow(
                    publication_id=publication_id,
                    address=address,
                    state="claimed",
                    attempts=1,
                    updated_at=now,
                    claimed_at=claimed_at,
                )
            )
            try:
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                # Never the address in a message: errors reach logs, artifacts and webhooks.
                raise AlreadyClaimed(f"publication {publication_id}", "delivery", ["this recipient"]) from exc

    def claim_deliveries(
        self, publication_id: int, addresses: Sequence[str], finished: Sequence[DeliveryOutcome] = ()
    ) -> list[str]:
        """Claim a chunk of a publication's recipients in one transaction, before sending to any of them; return
        those claimed now, in the given order. ``finished``, the outcomes of the chunk before, are recorded in the
        same transaction (as ``finish_deliveries`` would): one commit per chunk, and a process killed at any line
        still leaves only the chunk in hand claimed.

        As ``claim_delivery`` one at a time: a deferred delivery, or one that failed transiently, is claimed again
        by compare-and-set; a recipient already claimed (by another worker too: the upsert leaves a row that exists
        by the unique key alone, whatever races), sent to or failed for good is left out. Raises LedgerError as
        ``finish_deliveries`` does for ``finished``; nothing is claimed then.
        """
        if not addresses and not finished:
            return []
        dialect, now = self.engine.dialect.name, self._stored_moment(now_utc())
        with self._driver_transaction() as cursor:
            self._record(cursor, publication_id, finished, (), now)
            if not addresses:
                return []
            claimed = set()
            for address in addresses:  # one prepared statement, run per address (RETURNING says if it claimed)
                cursor.execute(_claim(dialect), {"publication_id": publication_id, "address": address, "now": now})
                if cursor.fetchone() is not None:
                    claimed.add(address)
            cursor.execute(_touch_claim(dialect), {"publication_id": publication_id, "now": now})
        return [address for address in addresses if address in claimed]

    def finish_deliveries(
        self, publication_id: int, outcomes: Sequence[DeliveryOutcome], claimed: Sequence[str] = ()
    ) -> None:
        """Record how a chunk of claimed deliveries ended, in one transaction; a recipient of ``claimed`` without an
        outcome (the chunk stopped before them) is left retryable for the next run (``NOT_TRIED``), never
        ``unknown``. Raises LedgerError if one was not claimed and is not already in its outcome's state (a retried
        write whose commit landed); nothing of the chunk is recorded then."""
        if not outcomes and not claimed:
            return
        with self._driver_transaction() as cursor:
            self._record(cursor, publication_id, outcomes, claimed, self._stored_moment(now_utc()))

    def finish_delivery(
        self,
        publication_id: int,
        address: str,
        state: Literal["sent", "failed", "deferred"],
        *,
        provider_id: str | None = None,
        error: str | None = None,
        transient: bool = False,
        not_before: datetime | None = None,
    ) -> None:
        """Record how a claimed delivery ended; raises LedgerError if it was not claimed."""
        mine = (DeliveryRow.publication_id == publication_id, DeliveryRow.address == address)
        with self._session() as session, session.begin():
            # ``unknown``: its claim was resumed while this send was slow; the true outcome still counts.
            result = session.execute(
                update(DeliveryRow)
                .where(*mine, DeliveryRow.state.in_(("claimed", "unknown")))
                .values(
                    state=state,
                    provider_id=provider_id,
                    error=error,
                    transient=transient,
                    not_before=not_before,
                    updated_at=now_utc(),
                )
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return
            # Already in that state: this is a retry of a write whose commit landed.
            if session.scalar(select(DeliveryRow.state).where(*mine)) != state:
                raise LedgerError(
                    f"a delivery of publication {publication_id} is not claimed; its outcome was not recorded"
                )

    def mark_unknown(self, publication_id: int, address: str, error: str) -> None:
        """Record that a claimed (or resumed) delivery's outcome cannot be known here: its request may have reached
        the provider. It is never sent again on its own; a person settles it (``carecast resolve``). Nothing happens
        when it is in another state."""
        with self._session() as session, session.begin():
            session.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.publication_id == publication_id,
                    DeliveryRow.address == address,
                    DeliveryRow.state.in_(("claimed", "unknown")),
                )
                .values(state="unknown", error=error, transient=False, updated_at=now_utc())
            )

    def delivery_tally(self, publication_id: int) -> tuple[list[str], Counter[str]]:
        """The provider ids of a publication's deliveries (those the provider accepted), and how many failed for
        each reason; counted by the database, so a long list never sits in memory as records."""
        accepted = select(DeliveryRow.provider_id).where(
            DeliveryRow.publication_id == publication_id, DeliveryRow.provider_id.is_not(None)
        )
        failures = (
            select(DeliveryRow.error, func.count())
            .where(DeliveryRow.publication_id == publication_id, DeliveryRow.state == "failed")
            .group_by(DeliveryRow.error)
        )
        with self._session() as session:
            provider_ids = [str(provider_id) for provider_id in session.scalars(accepted.order_by(DeliveryRow.id))]
            failed: Counter[str] = Counter()
            for error, count in session.execute(failures):
                failed[error or "failed"] += count
        return provider_ids, failed

    def delivery_by_provider_id(self, provider_id: str) -> DeliveryRecord | None:
        """The delivery the provider knows as ``provider_id`` (e.g. a Twilio MessageSid), or None if none is."""
        with self._session() as session:
            row = session.scalars(select(DeliveryRow).where(DeliveryRow.provider_id == provider_id)).first()
        return None if row is None else _delivery_record(row)

    def settle_delivery(
        self, provider_id: str, state: Literal["delivered", "failed"], *, error: str | None = None
    ) -> None:
        """Record the provider's final word on a ``sent`` delivery (a failure is permanent).

        Compare-and-set from ``sent``: status reports arrive late, twice and out of order, and the first final one
        stands. Nothing happens when no sent delivery has ``provider_id``.
        """
        with self._session() as session, session.begin():
            session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.provider_id == provider_id, DeliveryRow.state == "sent")
                .values(state=state, error=error, transient=False, updated_at=now_utc())
            )

    def _record(
        self,
        cursor: Any,
        publication_id: int,
        outcomes: Sequence[DeliveryOutcome],
        claimed: Sequence[str],
        now: Any,
    ) -> None:
        """Record ``outcomes`` and leave those of ``claimed`` without one retryable (``NOT_TRIED``), in the transaction
        of ``cursor``, ``now`` as stored. Raises LedgerError as ``finish_deliveries`` says."""
        reached = {outcome.address for outcome in outcomes}
        outcomes = [
            *outcomes,
            *(DeliveryOutcome(a, "failed", error=NOT_TRIED, transient=True) for a in claimed if a not in reached),
        ]
        if not outcomes:
            return
        rows = [
            {
                "publication_id": publication_id,
                "address": outcome.address,
                "state": outcome.state,
                "provider_id": outcome.provider_id,
                "error": outcome.error,
                "transient": outcome.transient,
                "not_before": None if outcome.not_before is None else self._stored_moment(outcome.not_before),
                "now": now,
            }
            for outcome in outcomes
        ]
        dialect = self.engine.dialect.name
        cursor.executemany(_finish(dialect), rows)
        if cursor.rowcount == len(rows):
            return
        # Each already in its outcome's state: this is a retry of a write whose commit landed.
        for outcome in outcomes:
            cursor.execute(_state(dialect), {"publication_id": publication_id, "address": outcome.address})
            if cursor.fetchone() != (outcome.state,):
                raise LedgerError(
                    f"deliveries of publication {publication_id} are not claimed; their outcomes were not recorded"
                )


def _delivery_record(row: DeliveryRow) -> DeliveryRecord:
    return DeliveryRecord(
        row.address,
        row.state,  # type: ignore[arg-type]
        row.transient,
        row.not_before,
        row.provider_id,
        row.error,
        row.attempts,
        row.claimed_at,
    )


# The fan-out's statements as the driver runs them (``LedgerStore._driver_transaction``), their text built once per
# dialect: the driver prepares each once and keeps it.


@cache
def _finish(dialect: str) -> str:
    """Records one claimed delivery's outcome (run once per chunk with a row of parameters per recipient).
    ``unknown``: its claim was resumed while the chunk was slow; the true outcome still counts."""
    mark = driver_marker(dialect)
    return (
        f"update deliveries set state = {mark('state')}, provider_id = {mark('provider_id')},"
        f" error = {mark('error')}, transient = {mark('transient')}, not_before = {mark('not_before')},"
        f" updated_at = {mark('now')}"
        f" where publication_id = {mark('publication_id')} and address = {mark('address')}"
        " and state in ('claimed', 'unknown')"
    )


@cache
def _claim(dialect: str) -> str:
    """Claims one recipient: a new row, or by compare-and-set a deferred delivery or one that failed transiently
    (the upsert leaves a row that exists by the unique key alone, whatever races); a row in any other state stays
    as it is and is not returned."""
    mark = driver_marker(dialect)
    return (
        "insert into deliveries (publication_id, address, state, attempts, transient, updated_at, claimed_at)"
        f" values ({mark('publication_id')}, {mark('address')}, 'claimed', 1, false, {mark('now')}, {mark('now')})"
        " on conflict (publication_id, address) do update"
        " set state = 'claimed', attempts = deliveries.attempts + 1, updated_at = excluded.updated_at,"
        " claimed_at = excluded.claimed_at"
        " where deliveries.state = 'deferred' or (deliveries.state = 'failed' and deliveries.transient)"
        " returning address"
    )


@cache
def _touch_claim(dialect: str) -> str:
    """Keeps a live claim of a publication fresh (as ``store.TOUCH_CLAIM``)."""
    mark = driver_marker(dialect)
    return (
        f"update publications set claimed_at = {mark('now')} where id = {mark('publication_id')} and state = 'claimed'"
    )


@cache
def _state(dialect: str) -> str:
    """The state of one delivery."""
    mark = driver_marker(dialect)
    return (
        f"select state from deliveries where publication_id = {mark('publication_id')} and address = {mark('address')}"
    )
