"""Content: every item seen (with its content hash), the feeds' validators, and items a channel passed over."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from carecast.errors import LedgerError
from carecast.html import normalise_link
from carecast.ledger.schema import FeedValidatorRow, ItemRow, PublicationItemRow, SkippedItemRow
from carecast.ledger.store import LedgerStore, insert_new
from carecast.model import ContentItem, now_utc


@dataclass(frozen=True)
class UpsertReport:
    """What one ingest changed: ids of new items, of edited ones (hash changed), and how many were unchanged."""

    new: list[str]
    edited: list[str]
    unchanged: int


class ContentLedger(LedgerStore):
    """Items, feed validators and skipped items."""

    def upsert_items(self, items: Iterable[ContentItem]) -> UpsertReport:
        """Store new items and the latest content of edited ones; an edit never resets what was published.

        An item a racing run stored first counts as unchanged, or as edited when its content differs.
        """
        new, edited, unchanged = [], [], 0
        now = now_utc()
        with self._session() as session, session.begin():
            by_link: dict[str, dict[str, ItemRow]] = {}
            for item in items:
                stored = session.get(ItemRow, item.id)
                if stored is None and item.id_from_link and item.url:
                    # A post moved (to https, to or from www., with tracking parameters) is the item stored before,
                    # whose id may be an older form of its link: it keeps that id and what was published of it.
                    stored = _stored_links(session, item.source, by_link).get(normalise_link(item.url))
                    item = replace(item, id=stored.id) if stored is not None else item
                if stored is None:
                    row = {
                        "id": item.id,
                        "source": item.source,
                        "published": item.published,
                        "content_hash": item.content_hash,
                        "first_seen": now,
                        "edited_at": None,
                        "data": item.to_json(),
                    }
                    if insert_new(session, ItemRow, [row], ["id"]):
                        new.append(item.id)
                        continue
                    stored = session.get(ItemRow, item.id)  # a racing run stored it first
                if stored is not None and stored.content_hash != item.content_hash:
                    stored.content_hash = item.content_hash
                    stored.published = item.published  # it orders candidates and bounds max_age_days
                    stored.data = item.to_json()
                    stored.edited_at = now
                    edited.append(item.id)
                else:
                    unchanged += 1
        return UpsertReport(new, edited, unchanged)

    def items(self, ids: Sequence[str]) -> list[ContentItem]:
        """The stored items with these ids, in the given order; raises LedgerError for an unknown id."""
        with self._session() as session:
            rows = {row.id: row for row in session.scalars(select(ItemRow).where(ItemRow.id.in_(ids)))}
        missing = [item_id for item_id in ids if item_id not in rows]
        if missing:
            raise LedgerError(f"unknown items: {', '.join(missing)}")
        return [ContentItem.from_json(rows[item_id].data) for item_id in ids]

    def unpublished(
        self, channel: str, account: str, sources: Sequence[str] | None, since: datetime
    ) -> list[ContentItem]:
        """Items published since ``since`` not yet published on ``channel`` and ``account``, newest first.

        Sources decide when an item exists (a future-dated post or an observance's lead time), so no upper bound.
        """
        published = select(PublicationItemRow.item_id).where(
            PublicationItemRow.channel == channel, PublicationItemRow.account == account
        )
        skipped = select(SkippedItemRow.item_id).where(
            SkippedItemRow.channel == channel, SkippedItemRow.account == account
        )
        query = select(ItemRow).where(
            ItemRow.published >= since, ItemRow.id.not_in(published), ItemRow.id.not_in(skipped)
        )
        if sources is not None:
            query = query.where(ItemRow.source.in_(sources))
        with self._session() as session:
            rows = session.scalars(query.order_by(ItemRow.published.desc(), ItemRow.id)).all()
        return [ContentItem.from_json(row.data) for row in rows]

    def skip_items(self, channel: str, account: str, item_ids: Iterable[str], reason: str) -> None:
        """Pass these items over for good on ``channel`` and ``account``: they are no longer candidates."""
        now = now_utc()
        rows = [
            {"item_id": item_id, "channel": channel, "account": account, "reason": reason, "skipped_at": now}
            for item_id in item_ids
        ]
        with self._session() as session, session.begin():
            insert_new(session, SkippedItemRow, rows, ["item_id", "channel", "account"])

    def validators(self, source: str) -> tuple[str | None, str | None] | None:
        """The (ETag, Last-Modified) kept for ``source``, or None before its first successful poll."""
        with self._session() as session:
            row = session.get(FeedValidatorRow, source)
            return None if row is None else (row.etag, row.last_modified)

    def save_validators(self, source: str, etag: str | None, last_modified: str | None) -> None:
        row = {"source": source, "etag": etag, "last_modified": last_modified, "checked_at": now_utc()}
        with self._session() as session, session.begin():
            insert_new(session, FeedValidatorRow, [row], ["source"], refresh=["etag", "last_modified", "checked_at"])


def _stored_links(session: Session, source: str, loaded: dict[str, dict[str, ItemRow]]) -> dict[str, ItemRow]:
    """The stored items of ``source`` by normalised link (the first seen for a link), loaded once per upsert."""
    if source not in loaded:
        links: dict[str, ItemRow] = {}
        rows = session.scalars(select(ItemRow).where(ItemRow.source == source).order_by(ItemRow.first_seen, ItemRow.id))
        for row in rows:
            with contextlib.suppress(ValueError):  # a stored link that cannot be split matches nothing
                if url := row.data.get("url"):
                    links.setdefault(normalise_link(url), row)
        loaded[source] = links
    return loaded[source]
