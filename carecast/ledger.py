"""The ledger: the single truth of what CareCast has seen, drafted and sent (SQLAlchemy; SQLite or PostgreSQL).

Tables: ``items`` (every item seen, with its content hash), ``feed_validators`` (ETag / Last-Modified per source),
``drafts`` (one per channel, account and item set), ``publications`` and ``publication_items``. The unique key
``(item_id, channel, account)`` of ``publication_items`` makes a second publication of an item on the same channel
and account impossible, whatever races: a claim inserts those rows before anything is sent, and a second claim
fails in the database. A publication is ``claimed → sent | failed``; one left ``claimed`` by a process that died
mid-send becomes ``unknown`` and waits for a person, never re-sent blindly. Only a transient failure may be claimed
again, by compare-and-set, so two workers never both retry it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    delete,
    select,
    update,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql import ColumnElement

from carecast.audience import Subscriber
from carecast.errors import AlreadyClaimed, LedgerError
from carecast.model import ContentItem, Draft, Receipt, now_utc

#: ``refused``: the channel's rules refused it (re-rendered after an edit); ``rejected``: staff said no (final).
DraftState = Literal["pending", "approved", "refused", "rejected", "expired"]
PublicationState = Literal["claimed", "sent", "failed", "unknown"]


class UtcDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and gives them back aware (SQLite would drop the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise LedgerError(f"naive datetime {value.isoformat()} reached the ledger")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON}


class ItemRow(Base):
    __tablename__ = "items"
    id: Mapped[str] = mapped_column(String(512), primary_key=True)
    source: Mapped[str] = mapped_column(String(100), index=True)
    published: Mapped[datetime] = mapped_column(index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[datetime]
    edited_at: Mapped[datetime | None]
    data: Mapped[dict[str, Any]]


class FeedValidatorRow(Base):
    __tablename__ = "feed_validators"
    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime]


class DraftRow(Base):
    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("channel", "account", "draft_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(100))
    account: Mapped[str] = mapped_column(String(200))
    draft_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))
    body: Mapped[dict[str, Any]]
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PublicationRow(Base):
    __tablename__ = "publications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id"), unique=True)
    channel: Mapped[str] = mapped_column(String(100))
    account: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), index=True)
    claimed_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    location: Mapped[str | None] = mapped_column(Text)
    provider_ids: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    transient: Mapped[bool] = mapped_column(Boolean, default=False)
    #: What a multi-step send has done so far (e.g. the ids of a thread's posted parts), so a retry resumes it.
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: A transient failure is tried again no sooner than this (the provider's Retry-After, a quiet-hours opening).
    not_before: Mapped[datetime | None]


class PublicationItemRow(Base):
    __tablename__ = "publication_items"
    __table_args__ = (UniqueConstraint("item_id", "channel", "account", name="one_publication_per_item"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"), index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"))
    channel: Mapped[str] = mapped_column(String(100))
    account: Mapped[str] = mapped_column(String(200))


class SkippedItemRow(Base):
    """An item a channel passed over for good (more new items than it sends per run): never sent late."""

    __tablename__ = "skipped_items"
    __table_args__ = (UniqueConstraint("item_id", "channel", "account"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"))
    channel: Mapped[str] = mapped_column(String(100))
    account: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    skipped_at: Mapped[datetime]


class SubscriberRow(Base):
    """A subscriber of a channel type and the consent record sends rely on (imported from CSV)."""

    __tablename__ = "subscribers"
    __table_args__ = (UniqueConstraint("channel_type", "address"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_type: Mapped[str] = mapped_column(String(50))
    address: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(String(64))
    consent_at: Mapped[datetime | None]
    consent_method: Mapped[str] = mapped_column(Text)
    consent_text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime]


class SuppressionRow(Base):
    """An address nothing more may be sent to on a channel type (STOP, unsubscribe, bounce, invalid number).

    Kept apart from the subscriber rows so that importing a list again never undoes an opt-out.
    """

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("channel_type", "address"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_type: Mapped[str] = mapped_column(String(50))
    address: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class DeliveryRow(Base):
    """One recipient of one publication: claimed before sending, so nobody gets a message twice."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("publication_id", "address"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"), index=True)
    address: Mapped[str] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(20))
    transient: Mapped[bool] = mapped_column(Boolean, default=False)
    not_before: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(200), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


#: ``delivered``: the provider confirmed that a ``sent`` message reached the recipient.
DeliveryState = Literal["claimed", "sent", "delivered", "failed", "deferred", "unknown"]


@dataclass(frozen=True)
class DeliveryRecord:
    address: str
    state: DeliveryState
    transient: bool
    not_before: datetime | None
    provider_id: str | None
    error: str | None
    attempts: int


@dataclass(frozen=True)
class UpsertReport:
    """What one ingest changed: ids of new items, of edited ones (hash changed), and how many were unchanged."""

    new: list[str]
    edited: list[str]
    unchanged: int


@dataclass(frozen=True)
class StoredDraft:
    id: int
    channel: str
    account: str
    state: DraftState
    draft: Draft
    reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class PublicationRecord:
    """One publication as ``carecast status`` shows it."""

    id: int
    channel: str
    account: str
    item_ids: list[str]
    state: PublicationState
    claimed_at: datetime
    finished_at: datetime | None
    location: str | None
    provider_ids: list[str]
    error: str | None
    transient: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "item_ids": self.item_ids,
            "channel": self.channel,
            "account": self.account,
            "state": self.state,
            "when": (self.finished_at or self.claimed_at).isoformat(),
            "receipt": {"location": self.location, "provider_ids": self.provider_ids} if self.location else None,
            "error": self.error,
        }


class Ledger:
    """All reads and writes of CareCast's state; every method raises LedgerError when the database fails."""

    def __init__(self, url: str) -> None:
        try:
            self.engine: Engine = create_engine(url, future=True)
            if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            Base.metadata.create_all(self.engine)
        except (SQLAlchemyError, OSError) as exc:
            raise LedgerError(f"cannot open the ledger: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A session whose database failures surface as LedgerError (ours unwrapped, the driver's chained)."""
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                yield session
        except StatementError as exc:
            if isinstance(exc.orig, LedgerError):
                raise exc.orig from exc
            raise LedgerError(f"the ledger failed: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise LedgerError(f"the ledger failed: {exc}") from exc

    # -- items -------------------------------------------------------------------------------------------------

    def upsert_items(self, items: Iterable[ContentItem]) -> UpsertReport:
        """Store new items and the latest content of edited ones; an edit never resets what was published."""
        new, edited, unchanged = [], [], 0
        now = now_utc()
        with self._session() as session, session.begin():
            for item in items:
                row = session.get(ItemRow, item.id)
                if row is None:
                    session.add(
                        ItemRow(
                            id=item.id,
                            source=item.source,
                            published=item.published,
                            content_hash=item.content_hash,
                            first_seen=now,
                            edited_at=None,
                            data=item.to_json(),
                        )
                    )
                    new.append(item.id)
                elif row.content_hash != item.content_hash:
                    row.content_hash = item.content_hash
                    row.published = item.published  # it orders candidates and bounds max_age_days
                    row.data = item.to_json()
                    row.edited_at = now
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
        with self._session() as session, session.begin():
            session.add_all(
                SkippedItemRow(item_id=item_id, channel=channel, account=account, reason=reason, skipped_at=now)
                for item_id in item_ids
            )

    # -- feed validators ---------------------------------------------------------------------------------------

    def validators(self, source: str) -> tuple[str | None, str | None] | None:
        """The (ETag, Last-Modified) kept for ``source``, or None before its first successful poll."""
        with self._session() as session:
            row = session.get(FeedValidatorRow, source)
            return None if row is None else (row.etag, row.last_modified)

    def save_validators(self, source: str, etag: str | None, last_modified: str | None) -> None:
        with self._session() as session, session.begin():
            row = session.get(FeedValidatorRow, source)
            if row is None:
                session.add(
                    FeedValidatorRow(source=source, etag=etag, last_modified=last_modified, checked_at=now_utc())
                )
            else:
                row.etag, row.last_modified, row.checked_at = etag, last_modified, now_utc()

    # -- drafts ------------------------------------------------------------------------------------------------

    def save_draft(self, draft: Draft, account: str, state: DraftState, reason: str | None = None) -> int:
        """Store ``draft`` for its channel and account, replacing an earlier draft of the same items.

        A draft that is already claimed for publication, or that staff decided on (rejected, expired), is kept as
        it is: an edit of the item after that never changes what was or will be sent. An unclaimed approved draft
        takes an edit's new text, or becomes ``refused`` when the edit breaks a rule (a withdrawn authorization).
        """
        now = now_utc()
        with self._session() as session, session.begin():
            row = session.scalars(
                select(DraftRow).where(
                    DraftRow.channel == draft.channel, DraftRow.account == account, DraftRow.draft_key == draft.key
                )
            ).one_or_none()
            if row is None:
                row = DraftRow(
                    channel=draft.channel,
                    account=account,
                    draft_key=draft.key,
                    state=state,
                    body=draft.to_json(),
                    reason=reason,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                return row.id
            claimed = session.scalar(select(PublicationRow.id).where(PublicationRow.draft_id == row.id))
            replaceable = row.state in ("pending", "refused") or (row.state == "approved" and state != "pending")
            if claimed is None and replaceable:
                row.body, row.state, row.reason, row.updated_at = draft.to_json(), state, reason, now
            return row.id

    def drafts(self, channel: str | None = None, states: Sequence[DraftState] | None = None) -> list[StoredDraft]:
        """Drafts (of one channel, in some states), oldest first."""
        query = select(DraftRow)
        if channel is not None:
            query = query.where(DraftRow.channel == channel)
        if states is not None:
            query = query.where(DraftRow.state.in_(states))
        with self._session() as session:
            return [self._stored(row) for row in session.scalars(query.order_by(DraftRow.id))]

    def draft(self, draft_id: int) -> StoredDraft:
        """One draft; raises LedgerError when there is none with that id."""
        with self._session() as session:
            row = session.get(DraftRow, draft_id)
            if row is None:
                raise LedgerError(f"no draft {draft_id}")
            return self._stored(row)

    @staticmethod
    def _stored(row: DraftRow) -> StoredDraft:
        return StoredDraft(
            id=row.id,
            channel=row.channel,
            account=row.account,
            state=row.state,  # type: ignore[arg-type]
            draft=Draft.from_json(row.body),
            reason=row.reason,
            created_at=row.created_at,
        )

    def refusals(self, channel: str, account: str) -> dict[str, str]:
        """The reasons the channel's rules refused drafts, by draft key."""
        query = select(DraftRow.draft_key, DraftRow.reason).where(
            DraftRow.channel == channel, DraftRow.account == account, DraftRow.state == "refused"
        )
        with self._session() as session:
            return {key: reason or "" for key, reason in session.execute(query)}

    def set_draft_state(self, draft_id: int, state: DraftState, reason: str | None = None) -> None:
        """Approve, reject or expire a draft not yet claimed.

        Raises LedgerError if it is unknown or claimed, or when approving a draft that expired: its slot passed,
        and a draft is never sent late.
        """
        with self._session() as session, session.begin():
            row = session.get(DraftRow, draft_id)
            if row is None:
                raise LedgerError(f"no draft {draft_id}")
            if row.state == "expired" and state == "approved":
                raise LedgerError(f"draft {draft_id} expired when its slot passed; it is never sent late")
            if session.scalar(select(PublicationRow.id).where(PublicationRow.draft_id == draft_id)) is not None:
                raise LedgerError(f"draft {draft_id} is already claimed for publication")
            row.state, row.reason, row.updated_at = state, reason, now_utc()

    # -- publications ------------------------------------------------------------------------------------------

    def due(self, channel: str, now: datetime | None = None, *, retries_only: bool = False) -> list[StoredDraft]:
        """Approved drafts of ``channel`` with no publication yet, or whose last attempt failed transiently and
        may be tried again at ``now`` (its ``not_before`` passed); with ``retries_only``, only the latter."""
        moment = now or now_utc()
        retry = (
            (PublicationRow.state == "failed")
            & PublicationRow.transient
            & (PublicationRow.not_before.is_(None) | (PublicationRow.not_before <= moment))
        )
        query = (
            select(DraftRow)
            .outerjoin(PublicationRow, PublicationRow.draft_id == DraftRow.id)
            .where(DraftRow.channel == channel, DraftRow.state == "approved")
            .where(retry if retries_only else (PublicationRow.id.is_(None) | retry))
            .order_by(DraftRow.id)
        )
        with self._session() as session:
            rows = session.scalars(query).all()
        return [self._stored(row) for row in rows]

    def claim(self, draft_id: int) -> int:
        """Claim a draft for sending, before anything is sent; return the publication id.

        Raises AlreadyClaimed when any of its items is already claimed or published on its channel and account
        (another run, worker or retry got there first), LedgerError when the draft is unknown or not approved.
        """
        with self._session() as session:
            draft = session.get(DraftRow, draft_id)
            if draft is None or draft.state != "approved":
                raise LedgerError(f"draft {draft_id} is not approved")
            item_ids = list(draft.body["item_ids"])
            existing = session.scalars(select(PublicationRow).where(PublicationRow.draft_id == draft_id)).one_or_none()
            if existing is not None:
                # Only a transient failure is retried, and only by the one worker whose compare-and-set wins.
                result = session.execute(
                    update(PublicationRow)
                    .where(
                        PublicationRow.id == existing.id,
                        PublicationRow.state == "failed",
                        PublicationRow.transient.is_(True),
                    )
                    .values(state="claimed", claimed_at=now_utc(), error=None)
                )
                session.commit()
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise AlreadyClaimed(draft.channel, draft.account, item_ids)
                return existing.id
            publication = PublicationRow(
                draft_id=draft_id,
                channel=draft.channel,
                account=draft.account,
                state="claimed",
                claimed_at=now_utc(),
                transient=False,
            )
            session.add(publication)
            try:
                session.flush()
                session.add_all(
                    PublicationItemRow(
                        publication_id=publication.id, item_id=item_id, channel=draft.channel, account=draft.account
                    )
                    for item_id in item_ids
                )
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                raise AlreadyClaimed(draft.channel, draft.account, item_ids) from exc
            return publication.id

    def record_sent(self, publication_id: int, receipt: Receipt) -> None:
        self._finish(
            publication_id,
            state="sent",
            location=receipt.location,
            provider_ids={"ids": list(receipt.provider_ids)},
            finished_at=receipt.sent_at,
        )

    def record_failed(
        self, publication_id: int, error: str, *, transient: bool, not_before: datetime | None = None
    ) -> None:
        self._finish(
            publication_id,
            state="failed",
            error=error,
            transient=transient,
            not_before=not_before if transient else None,
            finished_at=now_utc(),
        )

    def _finish(self, publication_id: int, **values: Any) -> None:
        # A send slower than the stale-claim sweep was marked ``unknown`` meanwhile; its true outcome still counts.
        with self._session() as session, session.begin():
            result = session.execute(
                update(PublicationRow)
                .where(PublicationRow.id == publication_id, PublicationRow.state.in_(("claimed", "unknown")))
                .values(**values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise LedgerError(f"publication {publication_id} is not claimed; its outcome was not recorded")

    def mark_stale_claims(self, older_than: timedelta, channel: str | None = None) -> list[int]:
        """Turn claims (of ``channel``) untouched for ``older_than`` into ``unknown``: the sender died mid-send.

        Returns their ids, for a person to check with the provider; they are never re-sent blindly. A send that is
        alive touches its claim with every recipient and every step, so a long batch is not taken for dead.
        """
        cutoff = now_utc() - older_than
        query = select(PublicationRow.id).where(PublicationRow.state == "claimed", PublicationRow.claimed_at < cutoff)
        if channel is not None:
            query = query.where(PublicationRow.channel == channel)
        with self._session() as session, session.begin():
            ids = list(session.scalars(query))
            if ids:
                session.execute(update(PublicationRow).where(PublicationRow.id.in_(ids)).values(state="unknown"))
                # A recipient claimed by a process that died may or may not have been sent to: a person decides.
                session.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.publication_id.in_(ids), DeliveryRow.state == "claimed")
                    .values(state="unknown")
                )
        return ids

    @staticmethod
    def _touch(session: Session, publication_id: int) -> None:
        session.execute(
            update(PublicationRow)
            .where(PublicationRow.id == publication_id, PublicationRow.state == "claimed")
            .values(claimed_at=now_utc())
        )

    def publications(self, ids: Sequence[int] | None = None) -> list[PublicationRecord]:
        """Every publication (or those with these ids), oldest first, with its items."""
        query, links_query = (
            select(PublicationRow),
            select(PublicationItemRow.publication_id, PublicationItemRow.item_id),
        )
        if ids is not None:
            query = query.where(PublicationRow.id.in_(ids))
            links_query = links_query.where(PublicationItemRow.publication_id.in_(ids))
        with self._session() as session:
            rows = session.scalars(query.order_by(PublicationRow.id)).all()
            links = session.execute(links_query).all()
        items: dict[int, list[str]] = {}
        for publication_id, item_id in links:
            items.setdefault(publication_id, []).append(item_id)
        return [
            PublicationRecord(
                id=row.id,
                channel=row.channel,
                account=row.account,
                item_ids=sorted(items.get(row.id, [])),
                state=row.state,  # type: ignore[arg-type]
                claimed_at=row.claimed_at,
                finished_at=row.finished_at,
                location=row.location,
                provider_ids=list((row.provider_ids or {}).get("ids", [])),
                error=row.error,
                transient=row.transient,
            )
            for row in rows
        ]

    def progress(self, publication_id: int) -> dict[str, Any]:
        """What the publication's earlier attempts recorded (empty at first)."""
        with self._session() as session:
            row = session.get(PublicationRow, publication_id)
            if row is None:
                raise LedgerError(f"no publication {publication_id}")
            return dict(row.progress or {})

    def save_progress(self, publication_id: int, progress: dict[str, Any]) -> None:
        """Record a step of a multi-step send as soon as it is done, before the next step is tried."""
        with self._session() as session, session.begin():
            session.execute(update(PublicationRow).where(PublicationRow.id == publication_id).values(progress=progress))
            self._touch(session, publication_id)

    # -- audience ----------------------------------------------------------------------------------------------

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
                    session.add(
                        SubscriberRow(channel_type=channel_type, address=subscriber.address, updated_at=now, **values)
                    )
                    added += 1
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
        with self._session() as session, session.begin():
            found = session.scalars(
                select(SuppressionRow).where(
                    SuppressionRow.channel_type == channel_type, SuppressionRow.address == address
                )
            ).one_or_none()
            if found is None:
                session.add(
                    SuppressionRow(
                        channel_type=channel_type, address=address, status=status, reason=reason, at=now_utc()
                    )
                )

    def unsuppress(self, channel_type: str, address: str) -> None:
        """Lift a suppression (START, YES, UNSTOP, or a new signed consent)."""
        with self._session() as session, session.begin():
            session.execute(
                delete(SuppressionRow).where(
                    SuppressionRow.channel_type == channel_type, SuppressionRow.address == address
                )
            )

    # -- deliveries --------------------------------------------------------------------------------------------

    def deliveries(self, publication_id: int) -> dict[str, DeliveryRecord]:
        """The recipients of a publication so far, by address."""
        with self._session() as session:
            rows = session.scalars(select(DeliveryRow).where(DeliveryRow.publication_id == publication_id)).all()
        return {row.address: _delivery_record(row) for row in rows}

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
            self._touch(session, publication_id)
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
        with self._session() as session, session.begin():
            result = session.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.publication_id == publication_id,
                    DeliveryRow.address == address,
                    DeliveryRow.state == "claimed",
                )
                .values(
                    state=state,
                    provider_id=provider_id,
                    error=error,
                    transient=transient,
                    not_before=not_before,
                    updated_at=now_utc(),
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
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

    def forget_drafts(self, channel: str, account: str, keys: Iterable[str]) -> None:
        """Drop the channel's unclaimed pending or approved drafts with these keys (their items were skipped)."""
        self._forget(channel, account, DraftRow.draft_key.in_(list(keys)))

    def forget_pending(self, channel: str, account: str, keep: Iterable[str]) -> None:
        """Drop pending or approved drafts of a channel that were not claimed and whose item set is not in ``keep``.

        A digest's item set changes as items arrive: the draft for yesterday's set must not be sent beside today's.
        """
        self._forget(channel, account, DraftRow.draft_key.not_in(list(keep)))

    def _forget(self, channel: str, account: str, which: ColumnElement[bool]) -> None:
        claimed = select(PublicationRow.draft_id)
        with self._session() as session, session.begin():
            session.execute(
                delete(DraftRow).where(
                    DraftRow.channel == channel,
                    DraftRow.account == account,
                    DraftRow.state.in_(("pending", "approved")),
                    which,
                    DraftRow.id.not_in(claimed),
                )
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
