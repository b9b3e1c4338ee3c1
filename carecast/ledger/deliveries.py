"""Deliveries: one row per recipient of a publication, claimed before sending so nobody gets a message twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from carecast.errors import AlreadyClaimed, LedgerError
from carecast.ledger.schema import DeliveryRow, DeliveryState
from carecast.ledger.store import LedgerStore, touch_claim
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

    @property
    def is_part(self) -> bool:
        """Whether this is a part of a multi-part publication (``part_address``) rather than a recipient."""
        return self.address.startswith("part ")


class DeliveryLedger(LedgerStore):
    """Per-recipient claims and outcomes, and the provider's later word on them (status callbacks)."""

    def deliveries(self, publication_id: int) -> dict[str, DeliveryRecord]:
        """The recipients of a publication so far, by address."""
        with self._session() as session:
            rows = session.scalars(select(DeliveryRow).where(DeliveryRow.publication_id == publication_id)).all()
        return {row.address: _delivery_record(row) for row in rows}

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

    def claim_delivery(self, publication_id: int, address: str) -> None:
        """Claim one recipient of a publication before sending to them.

        A deferred delivery, or one that failed transiently, is claimed again by compare-and-set. Raises
        AlreadyClaimed when the recipient was claimed, sent to, or failed for good.
        """
        now = now_utc()
        with self._session() as session:
            retry = session.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.publication_id == publication_id,
                    DeliveryRow.address == address,
                    (DeliveryRow.state == "deferred") | ((DeliveryRow.state == "failed") & DeliveryRow.transient),
                )
                .values(state="claimed", attempts=DeliveryRow.attempts + 1, updated_at=now)
            )
            touch_claim(session, publication_id)
            if retry.rowcount == 1:  # type: ignore[attr-defined]
                session.commit()
                return
            session.add(
                DeliveryRow(publication_id=publication_id, address=address, state="claimed", attempts=1, updated_at=now)
            )
            try:
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                # Never the address in a message: errors reach logs, artifacts and webhooks.
                raise AlreadyClaimed(f"publication {publication_id}", "delivery", ["this recipient"]) from exc

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


def _delivery_record(row: DeliveryRow) -> DeliveryRecord:
    return DeliveryRecord(
        row.address,
        row.state,  # type: ignore[arg-type]
        row.transient,
        row.not_before,
        row.provider_id,
        row.error,
        row.attempts,
    )
