"""Measure how CareCast reads Zyte's article-extraction benchmark pages: each page wrapped as a feed item, read as a
feed is, its full body compared sentence by sentence with the benchmark's expected article text (``articleBody``).

A page scores by two shares: of the article's sentences (of at least MIN_WORDS words), how many the full-body
rendering shows (recall); of the rendering's sentences (of at least MIN_WORDS words), how many are not in the
article (leaked: navigation, teasers, captions, boilerplate). The first 40 pages were split once, before any measure:
``tuning`` (20 pages, looked at while changing the reader) and ``held_out`` (20, measured once before and once after
a change); the next 40 by the same rule are ``held_out_2`` (opened as a second tuning set on 2026-12-05: looked at
page by page since) and the 37 left after them ``held_out_3``; the 64 pages that rule skipped for size are
``held_out_4``. ``held_out_3`` and ``held_out_4`` are never looked at page by page. See
``tests/corpus/zyte/README.md``.

Used by ``tests/corpus/test_zyte_corpus.py``; ``python -m tests.corpus.zyte_eval [PART] [-v]`` prints every page.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from carecast.config import Settings
from carecast.document import render_text
from carecast.model import ContentItem
from tests.corpus.measure import FULL_BODY, HERE, comparable, read_html_page
from tests.corpus.parts import EntryFigures, print_part

ZYTE = HERE / "zyte"
#: A sentence shorter than this (in words) is a label, a date or a byline more than the article's words.
MIN_WORDS = 5
_SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\n+")


def entries(part: str) -> list[dict[str, object]]:
    """The pages of one part (``tuning``, ``held_out``, ``held_out_2``, ``held_out_3``, ``held_out_4``): name (the
    page's sha256), address and ``articleBody``."""
    parts: dict[str, list[dict[str, object]]] = json.loads((ZYTE / "expected.json").read_text("utf-8"))
    return parts[part]


def read_entry(entry: dict[str, object], folder: Path, settings: Settings) -> ContentItem:
    """The page of ``entry`` (gzipped, as the benchmark keeps it) as the one item of an RSS feed."""
    name = str(entry["page"])
    html = gzip.decompress((ZYTE / "pages" / f"{name}.html.gz").read_bytes()).decode("utf-8")
    return read_html_page(name[:12], str(entry["url"]), html, folder, settings)


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (split at line breaks and after . ! ?) of at least MIN_WORDS words."""
    return [s for s in (" ".join(part.split()) for part in _SENTENCE_END.split(text)) if len(s.split()) >= MIN_WORDS]


def measure(entry: dict[str, object], item: ContentItem) -> EntryFigures:
    """Compare the item's full-body text with the page's expected article text, both folded by ``comparable``."""
    rendered = render_text(item.body, FULL_BODY)
    article = str(entry["articleBody"])
    text, expected = comparable(rendered), comparable(article)
    wanted, shown = sentences(article), sentences(rendered)
    return EntryFigures(
        name=str(entry["page"])[:12],
        wanted=len(wanted),
        missing=tuple(s for s in wanted if comparable(s) not in text),
        known=len(shown),
        leaked=tuple(s for s in shown if comparable(s) not in expected),
    )


if __name__ == "__main__":
    print_part(entries, read_entry, measure, ("article sentences", "sentences leaked"))
