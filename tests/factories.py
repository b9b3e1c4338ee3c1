"""Test data many test modules share: builders of content items of the sample practice (Oakview PT), and
who in its sample audience may be reached.

Each builder gives a complete, valid item with realistic defaults; a test names only the fields it is about.
"""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from carecast.model import ContentItem, content_hash

DESK_STRETCHES = "Sitting all day? These five stretches take ten minutes."
PATIENT_RECOGNITION = "It\u2019s Patient Recognition Week! Thank you for trusting us with your recovery."

#: The newsletter subscribers of the sample audience (config/audience/newsletter.csv) who may be reached: 6 of 10;
#: the others are unsubscribed (2), bounced (1) or have no consent on file (1).
NEWSLETTER_RECIPIENTS = frozenset(
    {
        "aisha.rahman@example.com",
        "james.okafor@example.net",
        "kevin.obrien@example.net",
        "linda.park@example.org",
        "maria.gonzalez@example.com",
        "sam.wright@example.com",
    }
)

#: Where an observance differs from a blog post.
OBSERVANCE: dict[str, Any] = {
    "source": "observances",
    "kind": "observance",
    "title": "National Patient Recognition Week",
    "url": None,
    "published": datetime(2026, 1, 18, 14, 0, tzinfo=UTC),
}


def make_item(
    item_id: str = "rss:blog:desk-stretches", *, summary: str = DESK_STRETCHES, **overrides: Any
) -> ContentItem:
    """A blog post of the practice, its HTML and text from ``summary`` and its content hash derived from it.

    ``overrides`` replace any other field of :class:`~carecast.model.ContentItem`.

    Raises:
        TypeError: an override names no field of ContentItem.
        ValueError: ``published`` is naive.
    """
    values: dict[str, Any] = {
        "source": "blog",
        "kind": "post",
        "title": "Five stretches for desk workers",
        "url": "https://www.oakviewpt.com/blog/desk-stretches",
        "summary_html": f"<p>{summary}</p>",
        "summary_text": summary,
        "published": datetime(2026, 3, 2, 15, 0, tzinfo=UTC),
        "content_hash": content_hash(summary),
    }
    return ContentItem(id=item_id, **(values | overrides))


def make_observance(
    item_id: str = "observance:patient-recognition-week:2026", *, summary: str = PATIENT_RECOGNITION, **overrides: Any
) -> ContentItem:
    """An observance item (National Patient Recognition Week) as the observances source yields it, without a link.

    Raises TypeError and ValueError as :func:`make_item` does.
    """
    return make_item(item_id, summary=summary, **(OBSERVANCE | overrides))


def reveals(token: str, address: str) -> bool:
    """Whether ``token``, or any dot-separated piece of it, decoded as base64 (URL-safe or not) or JSON, holds
    ``address``."""
    readings = [token, *token.split(".")]
    for piece in list(readings):
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            with contextlib.suppress(ValueError):
                readings.append(decode(piece + "=" * (-len(piece) % 4)).decode("utf-8", "replace"))
    for reading in list(readings):
        with contextlib.suppress(ValueError):
            readings.append(json.dumps(json.loads(reading)))
    return any(address.lower() in reading.lower() for reading in readings)
