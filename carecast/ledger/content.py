"""Content: every item seen (with its content hash), the feeds' validators, and items a channel passed over."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from carecast.document import Document
from carecast.errors import LedgerError
from carecast.html import normalise_link
from carecast.ledger.schema import FeedValidatorRow, ItemRow, PublicationItemRow, SkippedItemRow
from carecast.ledger.store import LedgerStore, insert_new, inserted_keys
from carecast.model import ContentItem, now_utc

#: Ids or fingerprints per ``IN (...)`` query: well under SQLite's (32,766) and PostgreSQL's (65,535) limits of
#: bound parameters, and the size of a big feed.
_CHUNK = 2000


@dataclass(frozen=True)
class UpsertReport:
    """What one ingest changed: ids of new items, of edited ones (hash changed), and how many were unchanged."""

    new: list[str]
    edited: list[str]
    unchanged: int


class ContentLedger(LedgerStore):
    """Items, feed validators and skipped items."""

    def upsert_items(
        self,
        items: Iterable[ContentItem],
        fingerprints: Mapping[str, str] | None = None,
        *,
        validators: tuple[str, str | None, str | None] | None = None,
    ) -> UpsertReport:
        """Store new items and the latest content of edited ones; an edit never resets what was published.

        ``fingerprints`` are the raw entries' (item id -> fingerprint, :attr:`SourceResult.fingerprints`): kept with
        each item, written again only when they change. ``validators`` (source, ETag, Last-Modified) are kept in the
        same transaction: the next poll sends them only if the items are stored. An item a racing run stored first
        counts as unchanged, or as edited when its content differs. One transaction, a few statements whatever the
        number of items.
        """
        items = list(items)
        fingerprints = fingerprints or {}
        edited: list[str] = []
        unchanged = 0
        now = now_utc()
        with self._session() as session, session.begin():
            if validators is not None:
                _keep_validators(session, *validators)
            known = _stored(session, [item.id for item in items])
            by_link: dict[str, dict[str, _Stored]] = {}
            fresh: dict[str, ContentItem] = {}
            updates: dict[str, dict[str, Any]] = {}
            for item in items:
                fingerprint = fingerprints.get(item.id)
                stored = known.get(item.id)
                if stored is None and item.id not in fresh and item.id_from_link and item.url:
                    # A post moved (to https, to or from www., with tracking parameters) is the item stored before,
                    # whose id may be an older form of its link: it keeps that id and what was published of it.
                    stored = _stored_links(session, item.source, by_link).get(normalise_link(item.url))
                    item = replace(item, id=stored.id) if stored is not None else item
                if stored is None and item.id not in fresh:
                    fresh[item.id] = item
                    known[item.id] = _Stored(item.id, item.content_hash, fingerprint)
                    continue
                stored = known[item.id] if stored is None else stored
                change = _change(stored, item, fingerprint, now)
                updates.setdefault(item.id, {"id": item.id}).update(change)
                known[item.id] = _Stored(item.id, item.content_hash, fingerprint or stored.fingerprint)
                if "content_hash" in change:
                    edited.append(item.id)
                else:
                    unchanged += 1
            written, raced_unchanged = _insert(session, fresh, fingerprints, now, updates, edited)
            unchanged += raced_unchanged
            changed = [values for values in updates.values() if len(values) > 1]
            if changed:
                session.execute(update(ItemRow), changed)
        return UpsertReport([item_id for item_id in fresh if item_id in written], edited, unchanged)

    def known_entries(self, fingerprints: Collection[str]) -> dict[str, datetime]:
        """Which of these raw-entry fingerprints an item in the ledger was read from (see :meth:`upsert_items`), each
        with the item's date."""
        found: dict[str, datetime] = {}
        wanted = list(fingerprints)
        with self._session() as session:
            for start in range(0, len(wanted), _CHUNK):
                query = select(ItemRow.entry_fingerprint, ItemRow.published).where(
                    ItemRow.entry_fingerprint.in_(wanted[start : start + _CHUNK])
                )
                found.update(
                    (fingerprint, published) for fingerprint, published in session.execute(query) if fingerprint
                )
        return found

    def items(self, ids: Sequence[str]) -> list[ContentItem]:
        """The stored items with these ids, in the given order; raises LedgerError for an unknown id."""
        with self._session() as session:
            rows = {row.id: row for row in session.scalars(select(ItemRow).where(ItemRow.id.in_(ids)))}
        missing = [item_id for item_id in ids if item_id not in rows]
        if missing:
            raise LedgerError(f"unknown items: {', '.join(missing)}")
        return [_item(rows[item_id]) for item_id in ids]

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
        return [_item(row) for row in rows]

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
        query = select(FeedValidatorRow.etag, FeedValidatorRow.last_modified).where(FeedValidatorRow.source == source)
        with self._session() as session:
            row = session.execute(query).first()
            return None if row is None else (row.etag, row.last_modified)

    def save_validators(self, source: str, etag: str | None, last_modified: str | None) -> None:
        with self._session() as session, session.begin():
            _keep_validators(session, source, etag, last_modified)


def _keep_validators(session: Session, source: str, etag: str | None, last_modified: str | None) -> None:
    row = {"source": source, "etag": etag, "last_modified": last_modified, "checked_at": now_utc()}
    insert_new(session, FeedValidatorRow, [row], ["source"], refresh=["etag", "last_modified", "checked_at"])


@dataclass(frozen=True)
class _Stored:
    """What upserting compares an item with: its stored content hash and raw-entry fingerprint."""

    id: str
    content_hash: str
    fingerprint: str | None


def _insert(
    session: Session,
    fresh: dict[str, ContentItem],
    fingerprints: Mapping[str, str],
    now: datetime,
    updates: dict[str, dict[str, Any]],
    edited: list[str],
) -> tuple[set[str], int]:
    """Insert the new items; those a racing run stored first are compared with what it stored (their changes go to
    ``updates``, their ids to ``edited`` when their content differs). The ids inserted, and how many were unchanged."""
    unchanged = 0
    rows = [_row(item, fingerprints.get(item.id), now) for item in fresh.values()]
    written = {
        key
        for start in range(0, len(rows), _CHUNK)
        for (key,) in inserted_keys(session, ItemRow, rows[start : start + _CHUNK], ["id"])
    }
    taken = [item for item in fresh.values() if item.id not in written]
    if taken:  # a racing run stored them first: compared with what it stored
        raced = _stored(session, [item.id for item in taken])
        for item in taken:
            change = _change(raced[item.id], item, fingerprints.get(item.id), now)
            updates.setdefault(item.id, {"id": item.id}).update(change)
            if "content_hash" in change:
                edited.append(item.id)
            else:
                unchanged += 1
    return written, unchanged


def _stored(session: Session, ids: Sequence[str]) -> dict[str, _Stored]:
    """The stored items among ``ids``, by id."""
    found: dict[str, _Stored] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = select(ItemRow.id, ItemRow.content_hash, ItemRow.entry_fingerprint).where(ItemRow.id.in_(chunk))
        found.update((row.id, _Stored(*row)) for row in session.execute(query))
    return found


def _row(item: ContentItem, fingerprint: str | None, now: datetime) -> dict[str, Any]:
    return {
        "id": item.id,
        "source": item.source,
        "published": item.published,
        "content_hash": item.content_hash,
        "first_seen": now,
        "edited_at": None,
        "data": item.to_json(),
        "entry_fingerprint": fingerprint,
        "document": _document(item),
    }


def _document(item: ContentItem) -> list[Any] | None:
    return item.document.to_json() if item.document is not None else None


def _item(row: ItemRow) -> ContentItem:
    item = ContentItem.from_json(row.data)
    return replace(item, document=Document.from_json(row.document)) if row.document is not None else item


def _change(stored: _Stored, item: ContentItem, fingerprint: str | None, now: datetime) -> dict[str, Any]:
    """The columns to write for ``item`` over ``stored``: its content when edited, else only a new fingerprint."""
    change: dict[str, Any] = {}
    if fingerprint is not None and fingerprint != stored.fingerprint:
        change["entry_fingerprint"] = fingerprint
    if stored.content_hash != item.content_hash:
        # published orders candidates and bounds max_age_days
        change.update(content_hash=item.content_hash, published=item.published, data=item.to_json(), edited_at=now)
        change["document"] = _document(item)
    return change


def _stored_links(session: Session, source: str, loaded: dict[str, dict[str, _Stored]]) -> dict[str, _Stored]:
    """The stored items of ``source`` by normalised link (the first seen for a link), loaded once per upsert."""
    if source not in loaded:
        links: dict[str, _Stored] = {}
        query = (
            select(ItemRow.id, ItemRow.content_hash, ItemRow.entry_fingerprint, ItemRow.data)
            .where(ItemRow.source == source)
            .order_by(ItemRow.first_seen, ItemRow.id)
        )
        for row in session.execute(query):
            with contextlib.suppress(ValueError):  # a stored link that cannot be split matches nothing
                if url := row.data.get("url"):
                    links.setdefault(normalise_link(url), _Stored(row.id, row.content_hash, row.entry_fingerprint))
        loaded[source] = links
    return loaded[source]
