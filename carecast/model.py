"""The data that flows through CareCast: content items, drafts and receipts.

Everything here is plain, immutable data with UTC-aware datetimes; it knows nothing of feeds, channels, the
ledger or Prefect. ``to_json``/``from_json`` give the ledger a stable, lossless storage form.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any, Literal

from carecast.document import Document

ItemKind = Literal["post", "observance", "recognition"]


def utc(moment: datetime) -> datetime:
    """Return ``moment`` as a UTC-aware datetime.

    Raises ValueError on a naive datetime: a moment without a zone is ambiguous and must be made aware at the edge
    that read it.
    """
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: give it a time zone where it is read")
    return moment.astimezone(UTC)


def content_hash(*parts: str) -> str:
    """A short, stable fingerprint of the parts, to notice edits of an item already seen."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


@functools.lru_cache(maxsize=1024)
def _read_document(html: str, url: str | None) -> Document:
    """The document of an item's HTML without one stored, read once per run (a frozen value): each channel of the
    run reads the same items afresh from the ledger."""
    from carecast.html import clean_body  # the reader needs the model's callers, not the other way round

    return clean_body(html, base_url=url).document


@dataclass(frozen=True)
class ContentItem:
    """One piece of content a source yields: a blog post, an observance or a recognition post.

    ``id`` is stable across polls and edits; ``content_hash`` changes when the content does. ``summary_html`` is
    already sanitised; ``summary_text`` is its plain-text form. ``published`` is UTC.
    """

    id: str
    source: str
    kind: ItemKind
    title: str
    url: str | None
    summary_html: str
    summary_text: str
    published: datetime
    content_hash: str
    image_url: str | None = None
    image_alt: str | None = None
    campaign: str | None = None
    tags: tuple[str, ...] = ()
    #: HIPAA: the item names or shows a patient; it may publish only on channels the authorization covers.
    mentions_patient: bool = False
    #: Channels a patient's written authorization on file covers, and until when (UTC); empty: none on file.
    authorized_channels: tuple[str, ...] = ()
    authorization_expires: datetime | None = None
    #: The patient the authorization names, so the PHI check knows them wherever they appear.
    patient: str | None = None
    #: The id was made from the link (a feed entry without a guid): the ledger also recognises the item stored
    #: under an older form of the same link (http before https, with ``www.``), so a moved post is not new.
    id_from_link: bool = False
    #: An observance's last day, in the practice's zone (its first is ``published``'s local date); None otherwise.
    last_day: date | None = None
    #: Who the item is for (``carecast.audiences``): audience names or kinds, ``all``; empty: not routed.
    audiences: tuple[str, ...] = ()
    #: The body read once at ingest (:mod:`carecast.document`), stored beside the item's data (``items.document``);
    #: None for an item read before documents were: :attr:`body` reads its ``summary_html`` then.
    document: Document | None = field(default=None, compare=False, repr=False)
    #: The item's language (BCP 47, e.g. ``en``, ``es``): from the feed, the entry or detection; None if unknown.
    language: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "published", utc(self.published))

    @cached_property
    def body(self) -> Document:
        """The item's document: the one stored, else read from ``summary_html`` (once per item object)."""
        if self.document is not None:
            return self.document
        return _read_document(self.summary_html, self.url)

    def to_json(self) -> dict[str, Any]:
        """The item's data as JSON values, without its document (stored in a column of its own)."""
        # Every field is a plain value (or a tuple, made a list below): no deep copy as ``asdict`` would make.
        data = {item_field.name: getattr(self, item_field.name) for item_field in fields(self)}
        del data["document"]
        data["published"] = self.published.isoformat()
        data["authorization_expires"] = self.authorization_expires.isoformat() if self.authorization_expires else None
        data["tags"] = list(self.tags)
        data["authorized_channels"] = list(self.authorized_channels)
        data["last_day"] = self.last_day.isoformat() if self.last_day else None
        data["audiences"] = list(self.audiences)
        if not self.audiences:
            del data["audiences"]  # what an item of no audience stored before is: its fingerprints stay the same
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContentItem:
        values = dict(data)
        values["published"] = datetime.fromisoformat(values["published"])
        expires = values.get("authorization_expires")
        values["authorization_expires"] = datetime.fromisoformat(expires) if expires else None
        values["tags"] = tuple(values.get("tags", ()))
        values["authorized_channels"] = tuple(values.get("authorized_channels", ()))
        last_day = values.get("last_day")
        values["last_day"] = date.fromisoformat(last_day) if last_day else None
        values["audiences"] = tuple(values.get("audiences", ()))
        return cls(**values)


@dataclass(frozen=True)
class Draft:
    """What one channel would send for one item (or, for a digest, several).

    ``parts`` holds the text of each post (several for an X thread, one otherwise); ``subject`` and ``html`` are
    for email. ``measures`` holds what the channel measured (weighted length, segments, encoding) for previews.
    """

    channel: str
    item_ids: tuple[str, ...]
    parts: tuple[str, ...]
    subject: str | None = None
    html: str | None = None
    preheader: str | None = None
    measures: dict[str, Any] = field(default_factory=dict)
    #: An image the channel attaches when it can (the item's ``image_url``); a post still goes out without it.
    image_url: str | None = None
    #: The image described for people who cannot see it (the item's ``image_alt``), for providers that take one.
    image_alt: str | None = None
    #: The item's tagged link when the channel sends it beside the text (a link preview, an article card).
    link: str | None = None
    #: What the provider's request needs beside the text, as ``compose`` decided it (JSON values only): a post's
    #: topic, an event's dates, a call to action, a link card's title. Kept as it is when staff edit the text.
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(self.parts)

    @property
    def key(self) -> str:
        """Identifies the set of items, so one item set has one draft per channel."""
        return content_hash(*sorted(self.item_ids))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["item_ids"] = list(self.item_ids)
        data["parts"] = list(self.parts)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Draft:
        values = dict(data)
        values["item_ids"] = tuple(values["item_ids"])
        values["parts"] = tuple(values["parts"])
        return cls(**values)


@dataclass(frozen=True)
class Receipt:
    """Proof that a publication left: the provider's ids, or the outbox file, and when (UTC)."""

    location: str
    sent_at: datetime
    provider_ids: tuple[str, ...] = ()
    #: What went out differently from the draft, for the run's summary (e.g. an image left off).
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "sent_at": self.sent_at.isoformat(),
            "provider_ids": list(self.provider_ids),
            "notes": list(self.notes),
        }


def now_utc() -> datetime:
    return datetime.now(UTC)
