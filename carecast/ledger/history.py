"""The send history of recipients, as an audit reads it: each delivery with its publication, and each suppression."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from carecast.ledger.schema import DeliveryRow, PublicationRow, SuppressionRow
from carecast.ledger.store import LedgerStore


@dataclass(frozen=True)
class DeliveryEvent:
    """One message to one recipient: its publication (channel, when claimed) and how it ended."""

    publication_id: int
    channel: str
    address: str
    state: str
    provider_id: str | None
    error: str | None
    claimed_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SuppressionEvent:
    """An opt-out, unsubscribe, bounce or invalid number, and when it was recorded."""

    channel_type: str
    address: str
    status: str
    reason: str
    at: datetime


class HistoryLedger(LedgerStore):
    """Reads for ``carecast audit``: deliveries and suppressions, of one recipient or all."""

    def delivery_events(self, address: str | None = None) -> list[DeliveryEvent]:
        """Every delivery (of ``address``, when given), oldest publication first."""
        query = select(DeliveryRow, PublicationRow).join(
            PublicationRow, PublicationRow.id == DeliveryRow.publication_id
        )
        if address is not None:
            query = query.where(DeliveryRow.address == address)
        with self._session() as session:
            rows = session.execute(query.order_by(PublicationRow.claimed_at, DeliveryRow.id)).all()
        return [
            DeliveryEvent(
                publication.id,
                publication.channel,
                delivery.address,
                delivery.state,
                delivery.provider_id,
                delivery.error,
                publication.claimed_at,
                delivery.updated_at,
            )
            for delivery, publication in rows
        ]

    def suppression_events(self, address: str | None = None) -> list[SuppressionEvent]:
        """Every suppression in force (of ``address``, when given), oldest first."""
        query = select(SuppressionRow)
        if address is not None:
            query = query.where(SuppressionRow.address == address)
        with self._session() as session:
            rows = session.scalars(query.order_by(SuppressionRow.at)).all()
        return [SuppressionEvent(row.channel_type, row.address, row.status, row.reason, row.at) for row in rows]
