"""The providers' engagement numbers: one reading per publication and subject (a post id; a GBP location),
replaced each time the metrics job reads it again; and the delivery and opt-out counts the report adds to them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from carecast.ledger.schema import DeliveryRow, MetricRow, SuppressionRow
from carecast.ledger.store import LedgerStore, insert_new
from carecast.model import now_utc


@dataclass(frozen=True)
class MetricReading:
    """A provider's numbers for one subject of a publication (``{"likes": 3, ...}``) and what it could not give
    (``{"impressions": "permission missing: read_insights"}``), as read at ``read_at``."""

    publication_id: int
    subject: str
    numbers: dict[str, int]
    problems: dict[str, str]
    read_at: datetime


class MetricLedger(LedgerStore):
    """Keep the latest reading of each publication's numbers; count deliveries and opt-outs for the report."""

    def save_metrics(
        self, publication_id: int, subject: str, numbers: Mapping[str, int], problems: Mapping[str, str]
    ) -> None:
        """Replace the reading of ``subject`` for ``publication_id`` with this one."""
        row = {"publication_id": publication_id, "subject": subject, "numbers": dict(numbers)}
        row |= {"problems": dict(problems), "read_at": now_utc()}
        with self._session() as session, session.begin():
            insert_new(
                session,
                MetricRow,
                [row],
                ["publication_id", "subject"],
                refresh=["numbers", "problems", "read_at"],
            )

    def metrics(self, publication_ids: Sequence[int] | None = None) -> list[MetricReading]:
        """The latest readings (of these publications, or all)."""
        query = select(MetricRow).order_by(MetricRow.publication_id, MetricRow.subject)
        if publication_ids is not None:
            query = query.where(MetricRow.publication_id.in_(publication_ids))
        with self._session() as session:
            return [
                MetricReading(row.publication_id, row.subject, row.numbers, row.problems, row.read_at)
                for row in session.scalars(query)
            ]

    def delivery_counts(self, publication_ids: Sequence[int]) -> dict[int, Counter[str]]:
        """How many recipients of each publication are in each delivery state (a fan-out's sent, delivered ...)."""
        query = (
            select(DeliveryRow.publication_id, DeliveryRow.state, func.count())
            .where(DeliveryRow.publication_id.in_(publication_ids))
            .group_by(DeliveryRow.publication_id, DeliveryRow.state)
        )
        counts: dict[int, Counter[str]] = {}
        with self._session() as session:
            for publication_id, state, count in session.execute(query):
                counts.setdefault(publication_id, Counter())[state] = count
        return counts

    def opt_outs(self, since: datetime | None = None) -> list[tuple[str, str, datetime]]:
        """Every opt-out (STOP, unsubscribe) since ``since``: (channel type, status, when); never who."""
        query = select(SuppressionRow.channel_type, SuppressionRow.status, SuppressionRow.at).where(
            SuppressionRow.status.in_(("unsubscribed", "stopped", "opted_out"))
        )
        if since is not None:
            query = query.where(SuppressionRow.at >= since)
        with self._session() as session:
            return [(kind, status, at) for kind, status, at in session.execute(query.order_by(SuppressionRow.at))]


def as_numbers(values: Mapping[str, Any]) -> dict[str, int]:
    """The integer values of a provider's answer (booleans and other shapes left out)."""
    return {key: int(value) for key, value in values.items() if isinstance(value, int) and not isinstance(value, bool)}
