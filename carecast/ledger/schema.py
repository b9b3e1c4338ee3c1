"""The ledger's tables, in one place: what each row records and the unique keys that make a double send impossible.

The unique key ``(item_id, channel, account)`` of ``publication_items`` makes a second publication of an item on the
same channel and account impossible, whatever races; ``(publication_id, address)`` of ``deliveries`` does the same
for one recipient of one publication.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from carecast.errors import LedgerError

#: ``refused``: the channel's rules refused it (re-rendered after an edit); ``rejected``: staff said no (final);
#: ``held``: the PHI check found something (``phi_holds``); staff fix the text or release it with a reason.
DraftState = Literal["pending", "approved", "refused", "rejected", "expired", "held"]
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
    #: A hash of the raw feed entry the item was read from (RSS): an entry still the same on the next poll is
    #: passed over before it is cleaned or sanitised. None for other sources and for items stored before it.
    entry_fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    #: The item's body as a document (carecast.document), read once at ingest. None for items stored before it.
    document: Mapped[list[Any] | None] = mapped_column(JSON)


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
    #: The publication that claimed it, set by ``claim`` in the transaction that makes the publication (never
    #: undone: a publication is never deleted). An approved draft without one is due (``ix_drafts_due``). No foreign
    #: key: ``publications.draft_id`` has the one that matters, and two tables pointing at each other could not be
    #: created in order.
    publication_id: Mapped[int | None] = mapped_column(Integer)


class PhiHoldRow(Base):
    """A draft the PHI check held, for one text of it (``fingerprint``): the findings, and who released it, when
    and why. A release holds for that text only: an edit is checked again. No foreign key: a digest's stale drafts
    are deleted, their holds stay as a record."""

    __tablename__ = "phi_holds"
    __table_args__ = (UniqueConstraint("draft_id", "fingerprint"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    draft_id: Mapped[int] = mapped_column(Integer, index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    findings: Mapped[dict[str, Any]]
    held_at: Mapped[datetime]
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(Text)
    release_reason: Mapped[str | None] = mapped_column(Text)


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


class PublicationAudienceRow(Base):
    """The audience (and segment) of the practice's config that selected a publication's recipients: what
    ``carecast audit`` names beside each message, whatever the config says later."""

    __tablename__ = "publication_audiences"
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"), primary_key=True)
    audience: Mapped[str] = mapped_column(String(100))
    segment: Mapped[str | None] = mapped_column(String(100))
    recorded_at: Mapped[datetime]


class UnsubscribeTokenRow(Base):
    """An unsubscribe link's token: a random id standing for a recipient of a list, so a link names nobody."""

    __tablename__ = "unsubscribe_tokens"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel_type: Mapped[str] = mapped_column(String(50))
    list_id: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


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
    #: When the request now in flight or in doubt was claimed (kept while its outcome is asked about): a provider's
    #: post made before it is not this request's. None in rows claimed before it was recorded.
    claimed_at: Mapped[datetime | None]


class ShortLinkRow(Base):
    """A short link ``https://<links.domain>/<code>``: a random code standing for one full (UTM-tagged) URL of one
    item on one channel. ``recipient`` is a subscriber's row id only where the practice counts email clicks per
    person (``links.email_per_recipient``); the code itself never says whose it is."""

    __tablename__ = "short_links"
    __table_args__ = (UniqueConstraint("item_id", "channel", "target_hash", "recipient", name="one_code_per_link"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    item_id: Mapped[str] = mapped_column(String(512))
    channel: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(Text)
    #: SHA-256 of ``target``: the unique key holds a hash, not a URL of any length.
    target_hash: Mapped[str] = mapped_column(String(64))
    #: 0: the link everyone on the channel gets; else the ``subscribers.id`` it was made for.
    recipient: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]


class ClickRow(Base):
    """One request for a short link: when, and who asked by class only (``person`` or a preview fetcher's name).
    No address, no full user agent: a click says how many, never who."""

    __tablename__ = "clicks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("short_links.id"), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    #: ``person``, or ``preview`` (a link-preview fetcher, prefetcher or scanner; ``agent`` names which).
    kind: Mapped[str] = mapped_column(String(20))
    agent: Mapped[str] = mapped_column(String(40))


class MetricRow(Base):
    """A provider's latest engagement numbers for one publication (or one location, for GBP), as last read, or the
    reason it could not give them (a missing permission, a retired metric)."""

    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("publication_id", "subject", name="one_reading_per_post"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"), index=True)
    #: The provider's id of what was measured (a post id; a location for GBP).
    subject: Mapped[str] = mapped_column(String(200))
    numbers: Mapped[dict[str, Any]]
    problems: Mapped[dict[str, Any]]
    read_at: Mapped[datetime]


#: An item's ``patient`` (the PHI check's names), as ``known_patients`` selects it and ``ix_items_patient`` holds it.
#: The key is written into the SQL, not bound: a planner matches an expression index only to the same expression.
ITEM_PATIENT = ItemRow.data[bindparam(None, "patient", type_=JSON.JSONStrIndexType, literal_execute=True)].as_string()

#: When a publication last moved (finished, else claimed), as ``status --since`` filters on it.
PUBLICATION_WHEN = func.coalesce(PublicationRow.finished_at, PublicationRow.claimed_at)

# What a large ledger is searched by: `status --since`, the PHI check's patients, and the few unknown deliveries
# among millions (``status``, the resolutions), each read without scanning the table.
Index("ix_publications_when", PUBLICATION_WHEN)
# Few items name a patient: SQLite indexes only those (PostgreSQL keeps no statistics of a partial index's
# expression, and then scans the table).
Index(
    "ix_items_patient",
    ITEM_PATIENT,
    sqlite_where=ITEM_PATIENT.is_not(None),
)
Index(
    "ix_deliveries_unknown",
    DeliveryRow.publication_id,
    DeliveryRow.address,
    sqlite_where=DeliveryRow.state == "unknown",
    postgresql_where=DeliveryRow.state == "unknown",
)

#: An approved draft no publication claimed yet: due (with the transient failures), as ``ix_drafts_due`` holds it.
DRAFT_DUE = (DraftRow.state == "approved") & DraftRow.publication_id.is_(None)
# A published draft stays approved: the few due ones among a channel's million are read without the others.
Index("ix_drafts_due", DraftRow.channel, DraftRow.id, sqlite_where=DRAFT_DUE, postgresql_where=DRAFT_DUE)

#: ``delivered``: the provider confirmed that a ``sent`` message reached the recipient.
DeliveryState = Literal["claimed", "sent", "delivered", "failed", "deferred", "unknown"]
