"""What reading a source gives, shared by every reader (:mod:`carecast.sources` re-exports it)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from html import escape
from typing import Any

from carecast.config import Settings
from carecast.model import ContentItem

#: Which of these raw-entry fingerprints the ledger holds, each with the date of the item stored from it
#: (:meth:`ContentLedger.known_entries`).
KnownEntries = Callable[[Collection[str]], Mapping[str, datetime]]


@dataclass(frozen=True)
class Validators:
    """Conditional-GET state the ledger keeps per source, sent back on the next poll."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class SourceResult:
    """What one read of a source gave."""

    items: list[ContentItem]
    #: To store for the next poll (RSS over http only).
    validators: Validators | None = None
    #: The server answered 304: nothing changed since the validators sent, and ``items`` is empty.
    not_modified: bool = False
    #: Problems that did not stop the read: a malformed feed partly read, an entry skipped, a post held back.
    warnings: list[str] = field(default_factory=list)
    #: Items that could not be read, each with its reason (a Markdown file with bad front matter); the others were.
    failures: list[str] = field(default_factory=list)
    #: RSS: each item's raw-entry fingerprint (item id -> fingerprint), for the ledger to keep with the item.
    fingerprints: dict[str, str] = field(default_factory=dict)
    #: RSS: entries passed over because the ledger holds their fingerprint (unchanged since they were stored).
    unchanged: int = 0


def written_item(
    settings: Settings, *, title: str, url: str | None, text: str, first_day: date, **fields: Any
) -> ContentItem:
    """An item whose words the practice wrote in its config (a campaign's invitation, an observance's message):
    ``text`` as its summary, one paragraph, published as ``first_day`` begins in the practice's zone. ``fields``
    are the item's others (id, source, kind, content_hash, campaign...)."""
    return ContentItem(
        title=title,
        url=url,
        summary_html=f"<p>{escape(text)}</p>",
        summary_text=text,
        published=datetime.combine(first_day, time(), tzinfo=settings.practice.zone).astimezone(UTC),
        **fields,
    )
