"""Audience: subscribers with their consent record, and suppressions (STOP, unsubscribe, bounce) kept apart."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select

from carecast.audience import Subscriber
from carecast.ledger.schema import SubscriberRow, SuppressionRow
from carecast.ledger.store import LedgerStore, insert_new
from carecast.model import now_utc


class AudienceLedger(LedgerStore):
    """Subscribers per channel type and the suppressions that override any import."""

    def save_subscribers(self, channel_type: str, subscribers: Iterable[Subscriber]) -> tuple[int, int]:
        """Add or update subscribers (consent record, name, zone, status); return (added, updated).

        Suppressions recorded by CareCast stay in force whatever the imported status says.
        """
        added = updated = 0
        now = now_utc()
        with self._session() as session, session.begin():
            existing = {
                row.address: row
                for row in session.scalars(select(SubscriberRow).where(SubscriberRow.channel_type == channel_type))
            }
            for subscriber in subscribers:
                values = {
                    "name": subscriber.name,
                    "timezone": subscriber.timezone,
                    "consent_at": subscriber.consent_at,
                    "consent_method": subscriber.consent_method,
                    "consent_text": subscriber.consent_text,
                    "status": subscriber.status,
                }
                row = existing.get(subscriber.address)
                if row is None:
                    # A racing import of the same file may add them first: then there is nothing left to do.
                    added += insert_new(
                        session,
                        SubscriberRow,
                        [{"channel_type": channel_type, "address": subscriber.address, "updated_at": now, **values}],
                        ["channel_type", "address"],
                    )
                elif any(getattr(row, key) != value for key, value in values.items()):
                    for key, value in values.items():
                        setattr(row, key, value)
                    row.updated_at = now
                    updated += 1
        return added, updated

    def subscribers(self, channel_type: str) -> list[Subscriber]:
        """Every subscriber of ``channel_type``, a suppression shown as their status, ordered by address."""
        query = (
            select(SubscriberRow, SuppressionRow.status)
            .outerjoin(
                SuppressionRow,
                (SuppressionRow.channel_type == SubscriberRow.channel_type)
                & (SuppressionRow.address == SubscriberRow.address),
            )
            .where(SubscriberRow.channel_type == channel_type)
            .order_by(SubscriberRow.address)
        )
        with self._session() as session:
            rows = session.execute(query).all()
        return [
            Subscriber(
                address=row.address,
                name=row.name,
                consent_at=row.consent_at,
                consent_method=row.consent_method,
                consent_text=row.consent_text,
                status=suppressed or row.status,  # type: ignore[arg-type]
                timezone=row.timezone,
            )
            for row, suppressed in rows
        ]

    def suppress(self, channel_type: str, address: str, status: str, reason: str) -> None:
        """Stop every further send to ``address`` on ``channel_type`` (idempotent: the first reason is kept)."""
        row = {"channel_type": channel_type, "address": address, "status": status, "reason": reason, "at": now_utc()}
        with self._session() as session, session.begin():
            insert_new(session, SuppressionRow, [row], ["channel_type", "address"])

    def unsuppress(self, channel_type: str, address: str) -> None:
        """Lift a suppression (START, YES, UNSTOP, or a new signed consent)."""
        with self._session() as session, session.begin():
            session.execute(
                delete(SuppressionRow).where(
                    SuppressionRow.channel_type == channel_type, SuppressionRow.address == address
                )
            )
