"""Audience: subscribers with their consent record, and suppressions (STOP, unsubscribe, bounce) kept apart."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import delete, select

from carecast.audience import Subscriber
from carecast.ledger.schema import PublicationAudienceRow, SubscriberRow, SuppressionRow
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
        return list(self.stream_subscribers(channel_type))

    def stream_subscribers(self, channel_type: str, page: int = 1000) -> Iterator[Subscriber]:
        """``subscribers``, read a page of ``page`` plain rows at a time (keyset on the address): a fan-out's memory
        stays flat however long the list."""
        after = ""
        while True:
            query = (
                select(
                    SubscriberRow.address,
                    SubscriberRow.name,
                    SubscriberRow.consent_at,
                    SubscriberRow.consent_method,
                    SubscriberRow.consent_text,
                    SubscriberRow.status,
                    SubscriberRow.timezone,
                    SuppressionRow.status.label("suppressed"),
                )
                .outerjoin(
                    SuppressionRow,
                    (SuppressionRow.channel_type == SubscriberRow.channel_type)
                    & (SuppressionRow.address == SubscriberRow.address),
                )
                .where(SubscriberRow.channel_type == channel_type, SubscriberRow.address > after)
                .order_by(SubscriberRow.address)
                .limit(page)
            )
            with self._session() as session:
                rows = session.execute(query).all()
            for row in rows:
                yield Subscriber(
                    address=row.address,
                    name=row.name,
                    consent_at=row.consent_at,
                    consent_method=row.consent_method,
                    consent_text=row.consent_text,
                    status=row.suppressed or row.status,
                    timezone=row.timezone,
                )
            if len(rows) < page:
                return
            after = rows[-1].address

    def suppress(self, channel_type: str, address: str, status: str, reason: str) -> None:
        """Stop every further send to ``address`` on ``channel_type`` (idempotent: the first reason is kept)."""
        row = {"channel_type": channel_type, "address": address, "status": status, "reason": reason, "at": now_utc()}
        with self._session() as session, session.begin():
            insert_new(session, SuppressionRow, [row], ["channel_type", "address"])

    def suppressed(self, scopes: Iterable[str]) -> dict[str, str]:
        """Every address suppressed on any of ``scopes`` (channel types, or one list's ``newsletter:<channel>``),
        with the status recorded first."""
        with self._session() as session:
            rows = session.execute(
                select(SuppressionRow.address, SuppressionRow.status)
                .where(SuppressionRow.channel_type.in_(list(scopes)))
                .order_by(SuppressionRow.at.desc())
            ).all()
        return {row.address: row.status for row in rows}

    def record_selection(self, publication_id: int, audience: str, segment: str | None) -> None:
        """Record which audience and segment a publication goes to (idempotent: a resumed fan-out keeps the first)."""
        row = {"publication_id": publication_id, "audience": audience, "segment": segment, "recorded_at": now_utc()}
        with self._session() as session, session.begin():
            insert_new(session, PublicationAudienceRow, [row], ["publication_id"])

    def selections(self) -> dict[int, tuple[str, str | None]]:
        """The audience and segment of every publication that recorded one, by publication id."""
        with self._session() as session:
            rows = session.execute(
                select(
                    PublicationAudienceRow.publication_id,
                    PublicationAudienceRow.audience,
                    PublicationAudienceRow.segment,
                )
            ).all()
        return {row.publication_id: (row.audience, row.segment) for row in rows}

    def unsuppress(self, channel_type: str, address: str) -> None:
        """Lift a suppression (START, YES, UNSTOP, or a new signed consent)."""
        with self._session() as session, session.begin():
            session.execute(
                delete(SuppressionRow).where(
                    SuppressionRow.channel_type == channel_type, SuppressionRow.address == address
                )
            )
