"""What ``carecast status`` reads of the publications: the conditions its filters make, and its table's rows read
a page at a time without a record per row (a million publications cost little more than one query printing them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, String, select, type_coerce

from carecast.ledger.schema import PUBLICATION_WHEN, PublicationItemRow, PublicationRow, PublicationState
from carecast.ledger.store import LedgerStore


class StatusLedger(LedgerStore):
    """The publications as ``status`` lists them."""

    def status_rows(
        self,
        *,
        channel: str | None = None,
        state: PublicationState | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        page: int = 1000,
    ) -> Iterator[StatusRow]:
        """What ``carecast status`` lists of the publications :meth:`stream_publications` gives (same filters,
        order and pages): id, channel, state, when to the minute (``2026-11-29T23:15``), items, and where it went
        (or why not). Per page two queries (its ids, then its rows joined with their items) and no record built
        per row: the table of a million publications costs little more than one query printing them."""
        filters = self._status_filters(channel, state, since, limit)
        if filters is None:
            return
        after = 0
        while True:
            with self._session() as session:
                connection = session.connection()  # Core rows: no ORM loading per row
                page_ids = select(PublicationRow.id).where(*filters, PublicationRow.id > after)
                ids = connection.execute(page_ids.order_by(PublicationRow.id).limit(page)).scalars().all()
                if not ids:
                    return
                span = PublicationRow.id.between(ids[0], ids[-1])
                rows = connection.execute(_STATUS_COLUMNS.where(*filters, span).order_by(PublicationRow.id)).all()
            yield from _status_rows(rows)
            if len(ids) < page:
                return
            after = ids[-1]

    def _status_filters(
        self, channel: str | None, state: str | None, since: datetime | None, limit: int | None
    ) -> list[ColumnElement[bool]] | None:
        """The conditions on the publications ``status`` lists; None when ``limit`` leaves none."""
        filters: list[ColumnElement[bool]] = []
        if channel is not None:
            filters.append(PublicationRow.channel == channel)
        if state is not None:
            filters.append(PublicationRow.state == state)
        if since is not None:
            filters.append(since <= PUBLICATION_WHEN)
        if limit is not None:
            newest = select(PublicationRow.id).where(*filters).order_by(PublicationRow.id.desc()).limit(limit)
            with self._session() as session:
                ids = session.scalars(newest).all()
            if not ids:
                return None
            filters.append(PublicationRow.id.between(min(ids), max(ids)))
        return filters


#: A row of ``carecast status``: id, channel, state, when (to the minute), items, where (or why not).
StatusRow = tuple[int, str, str, str, str, str]
# The moment as stored (SQLite: the text, UTC; PostgreSQL: a datetime), not parsed into an aware datetime per row.
_STATUS_COLUMNS = select(
    PublicationRow.id,
    PublicationRow.channel,
    PublicationRow.state,
    type_coerce(PUBLICATION_WHEN, String),
    PublicationRow.location,
    PublicationRow.error,
    PublicationItemRow.item_id,
).outerjoin(PublicationItemRow, PublicationItemRow.publication_id == PublicationRow.id)


def _status_rows(rows: Sequence[Sequence[Any]]) -> Iterator[StatusRow]:
    """The status rows of ``rows`` (``_STATUS_COLUMNS``, by id): one per publication, its items sorted."""
    head: tuple[int, str, str, str, str] | None = None
    items: list[str] = []
    for id, channel, state, when, location, error, item in rows:
        if head is None or head[0] != id:  # a publication's first row: the rows before were the one before's
            if head is not None:
                yield _status_row(head, items)
            head, items = (id, channel, state, _minute(when), str(location) if location else str(error or "")), []
        if item is not None:
            items.append(item)
    if head is not None:
        yield _status_row(head, items)


def _status_row(head: tuple[int, str, str, str, str], items: list[str]) -> StatusRow:
    id, channel, state, when, where = head
    return id, channel, state, when, ", ".join(sorted(items)), where


def _minute(when: str | datetime) -> str:
    """A stored moment as ``status`` shows it, in UTC to the minute: ``2026-11-29T23:15``."""
    if isinstance(when, datetime):
        return when.astimezone(UTC).isoformat()[:16]
    return when.replace(" ", "T")[:16]
