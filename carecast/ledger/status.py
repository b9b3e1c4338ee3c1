"""What ``carecast status`` reads of the publications: the conditions its filters make, and its table's rows read
a page at a time straight from the driver (a million publications cost little more than one query printing them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import ColumnElement, select

from carecast.errors import LedgerError
from carecast.ledger.schema import PUBLICATION_WHEN, PublicationRow, PublicationState, UtcDateTime
from carecast.ledger.store import LedgerStore


class StatusLedger(LedgerStore):
    """The publications as ``status`` lists them."""

    def status_pages(
        self,
        *,
        channel: str | None = None,
        state: PublicationState | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        page: int = 1000,
    ) -> Iterator[list[StatusRow]]:
        """What ``carecast status`` lists of the publications :meth:`stream_publications` gives (same filters and
        order), in pages of ``page`` publications (the last one shorter): id, channel, state, when to the minute
        (``2026-11-29T23:15``), items, and where it went (or why not).

        One query a page on the driver's own cursor (the page's publications joined with their items, the moment
        and the place worded by the database), no SQLAlchemy row or record per row: the table of a million
        publications costs little more than one query printing them. Raises LedgerError when the database fails.
        """
        chosen = self._status_conditions(channel, state, since, limit)
        if chosen is None:
            return
        conditions, parameters = chosen
        query = _status_query(self.engine.dialect.name, conditions)
        after = 0
        while True:
            rows = self._driver_rows(query, parameters | {"after": after, "page": page})
            ids = list(map(itemgetter(0), rows))
            count = len(set(ids))
            if count:
                # Most publications carry one item: a page without a digest is the driver's rows as they are.
                yield rows if count == len(rows) else list(_grouped(rows))
            if count < page:
                return
            after = ids[-1]

    def _driver_rows(self, query: str, parameters: dict[str, Any]) -> list[Any]:
        """The rows of ``query`` as the driver gives them (tuples), on a connection of their own. Raises
        LedgerError when the database fails."""
        with self.engine.connect() as connection:
            try:
                cursor = connection.connection.cursor()
                try:
                    cursor.execute(query, parameters)
                    return list(cursor.fetchall())
                finally:
                    cursor.close()
            except connection.dialect.loaded_dbapi.Error as exc:
                raise LedgerError(f"the ledger failed: {exc}") from exc

    def _status_conditions(
        self, channel: str | None, state: str | None, since: datetime | None, limit: int | None
    ) -> tuple[list[str], dict[str, Any]] | None:
        """``_status_filters`` as SQL on ``publications`` (the driver's named parameters) for ``status_pages``."""
        mark = _marker(self.engine.dialect.name)
        conditions: list[str] = []
        parameters: dict[str, Any] = {}
        if channel is not None:
            conditions.append(f"channel = {mark('channel')}")
            parameters["channel"] = channel
        if state is not None:
            conditions.append(f"state = {mark('state')}")
            parameters["state"] = state
        if since is not None:
            conditions.append(f"coalesce(finished_at, claimed_at) >= {mark('since')}")
            # As the ledger stores a moment: SQLite its text in UTC, PostgreSQL an aware datetime.
            dialect = self.engine.dialect
            stored = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
            parameters["since"] = stored(since) if stored is not None else since
        if limit is not None:
            newest = f"select id from publications{_where(conditions)} order by id desc limit {mark('limit')}"
            query = f"select min(id), max(id) from ({newest}) newest"
            [(lowest, highest)] = self._driver_rows(query, parameters | {"limit": limit})
            if lowest is None:
                return None
            conditions.append(f"id between {mark('lowest')} and {mark('highest')}")
            parameters |= {"lowest": lowest, "highest": highest}
        return conditions, parameters

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


def _marker(dialect: str) -> Any:
    """How the driver names a parameter: ``:name`` (sqlite3), ``%(name)s`` (psycopg)."""
    return "%({})s".format if dialect == "postgresql" else ":{}".format


def _where(conditions: Sequence[str]) -> str:
    return "".join(f" {'where' if n == 0 else 'and'} {condition}" for n, condition in enumerate(conditions))


def _status_query(dialect: str, conditions: Sequence[str]) -> str:
    """A page of ``status``: the next ``page`` publications after the id ``after`` meeting ``conditions``, a row
    per item (as ``StatusRow``, one item in place of the items), ``''`` for what is missing."""
    mark = _marker(dialect)
    when = "coalesce(p.finished_at, p.claimed_at)"
    items = "publication_items i on i.publication_id = p.id"
    if dialect == "postgresql":
        minute = f"""to_char({when} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI')"""
        # Bounded by the page's ids: else the planner hashes every item of the ledger for each page's thousand.
        items += f" and i.publication_id > {mark('after')} and i.publication_id <= (select max(id) from p)"
    else:  # SQLite keeps a moment as text in UTC (``2026-11-29 23:15:42.000000``) and looks each item up by index
        minute = f"replace(substr({when}, 1, 16), ' ', 'T')"
    chosen = _where([f"id > {mark('after')}", *conditions])
    return (
        "with p as (select id, channel, state, claimed_at, finished_at, location, error from publications"
        f"{chosen} order by id limit {mark('page')})"
        f" select p.id, p.channel, p.state, {minute}, coalesce(i.item_id, ''),"
        " coalesce(nullif(p.location, ''), p.error, '')"
        f" from p left join {items} order by p.id"
    )


def _grouped(rows: Sequence[StatusRow]) -> Iterator[StatusRow]:
    """The status rows of ``rows`` (``_status_query``'s, by id): one per publication, its items sorted."""
    head: StatusRow | None = None
    items: list[str] = []
    for row in rows:
        if head is None or head[0] != row[0]:  # a publication's first row: the rows before were the one before's
            if head is not None:
                yield _with_items(head, items)
            head, items = row, []
        items.append(row[4])  # '' only on the one row of a publication without items
    if head is not None:
        yield _with_items(head, items)


def _with_items(head: StatusRow, items: list[str]) -> StatusRow:
    id, channel, state, when, _, where = head
    return id, channel, state, when, ", ".join(sorted(items)), where
