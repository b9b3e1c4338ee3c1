"""What a Bluesky post's text becomes: the text shown with its rich-text facets (links shortened as Bluesky's app
shows them), its length in graphemes as Bluesky counts it, and the TID record keys and timestamps of its records."""

from __future__ import annotations

import functools
import urllib.parse
from datetime import datetime
from typing import Any

from atproto_client import models
from atproto_client.models.utils import get_model_as_dict
from atproto_client.utils import TextBuilder, facet_detection

from carecast.plugin.text import graphemes

TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# Bluesky's app shows a link's path only up to this many characters, then "...".
SHOWN_PATH = 15


def display_url(url: str) -> str:
    """``url`` as the post shows it: itself when short, else host and the start of its path, as Bluesky's app
    shortens links (the facet still leads to the whole URL)."""
    parts = urllib.parse.urlsplit(url)
    path = ("" if parts.path == "/" else parts.path) + (f"?{parts.query}" if parts.query else "")
    path += f"#{parts.fragment}" if parts.fragment else ""
    return url if len(path) <= SHOWN_PATH else f"{parts.netloc}{path[: SHOWN_PATH - 2]}..."


def rich_text(text: str) -> tuple[str, list[dict[str, Any]]]:
    """The text a post shows for ``text`` and its facets (links and hashtags, by UTF-8 byte offsets), as JSON.

    Each link is shown as :func:`display_url` gives it; its facet's ``uri`` is the whole URL.
    """
    raw = text.encode()
    builder, position = TextBuilder(), 0
    for facet in facet_detection.detect_facets(text):
        start, end = facet.index.byte_start, facet.index.byte_end
        builder.text(raw[position:start].decode())
        shown = raw[start:end].decode()
        feature = facet.features[0]
        if isinstance(feature, models.AppBskyRichtextFacet.Link):
            builder.link(display_url(feature.uri) if shown.startswith("http") else shown, feature.uri)
        else:
            builder.tag(shown, feature.tag)
        position = end
    builder.text(raw[position:].decode())
    return builder.build_text(), [get_model_as_dict(facet) for facet in builder.build_facets()]


@functools.lru_cache(maxsize=1024)
def bluesky_length(text: str) -> int:
    """The length Bluesky checks against its 300: grapheme clusters of the text as posted (links as shown).

    The last 1,024 texts measured are remembered: ``enforce`` re-measures what ``compose`` measured.
    """
    return graphemes(rich_text(text)[0])


def tid(moment: datetime, clock_id: int) -> str:
    """A record key in the AT Protocol's TID form: microseconds since the epoch and a 10-bit clock id, base32."""
    value = (int(moment.timestamp() * 1_000_000) << 10) | (clock_id & 0x3FF)
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def timestamp(moment: datetime) -> str:
    """``moment`` as a record's ``createdAt``: ISO 8601 in UTC to the millisecond, ending in ``Z``."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
