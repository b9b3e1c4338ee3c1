"""Measure how CareCast reads Zyte's article-extraction benchmark pages: each page wrapped as a feed item, read as a
feed is, its full body compared sentence by sentence with the benchmark's expected article text (``articleBody``).

A page scores by two shares: of the article's sentences (of at least MIN_WORDS words), how many the full-body
rendering shows (recall); of the rendering's sentences (of at least MIN_WORDS words), how many are not in the
article (leaked: navigation, teasers, captions, boilerplate). The 40 pages were split once, before any measure:
``tuning`` (20 pages, looked at while changing the reader) and ``held_out`` (20, measured once before and once after
a change). See ``tests/corpus/zyte/README.md``.

Used by ``tests/corpus/test_zyte_corpus.py``; ``python -m tests.corpus.zyte_eval [PART] [-v]`` prints every page.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

from carecast.config import Settings
from carecast.document import render_text
from carecast.model import ContentItem
from tests.corpus.measure import FULL_BODY, HERE, comparable, read_html_page

ZYTE = HERE / "zyte"
#: A sentence shorter than this (in words) is a label, a date or a byline more than the article's words.
MIN_WORDS = 5
_SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\n+")


def entries(part: str) -> list[dict[str, object]]:
    """The pages of one part (``tuning``, ``held_out``): name (the page's sha256), address and ``articleBody``."""
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


@dataclass(frozen=True)
class EntryFigures:
    """What one page gave: the article's sentences and those shown; the rendering's sentences and those leaked."""

    name: str
    wanted: int
    missing: tuple[str, ...]
    shown: int
    leaked: tuple[str, ...]


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
        shown=len(shown),
        leaked=tuple(s for s in shown if comparable(s) not in expected),
    )


def totals(figures: list[EntryFigures]) -> tuple[int, int, int, int]:
    """The article's sentences found and wanted; the rendering's sentences leaked and shown."""
    wanted = sum(f.wanted for f in figures)
    shown = sum(f.shown for f in figures)
    return wanted - sum(len(f.missing) for f in figures), wanted, sum(len(f.leaked) for f in figures), shown


if __name__ == "__main__":
    import sys
    import tempfile

    from carecast.practice import load_settings
    from tests.conftest import SAMPLE_CONFIG

    part = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "tuning")
    settings = load_settings(SAMPLE_CONFIG / "carecast.yaml")
    with tempfile.TemporaryDirectory() as folder:
        results = []
        for entry in entries(part):
            figures = measure(entry, read_entry(entry, Path(folder), settings))
            results.append(figures)
            print(
                f"{figures.name} {figures.wanted - len(figures.missing)}/{figures.wanted} kept, "
                f"{len(figures.leaked)}/{figures.shown} leaked  {entry['url']}"
            )
            if "-v" in sys.argv:
                for sentence in figures.missing:
                    print("    missing:", sentence[:120])
                for sentence in figures.leaked:
                    print("    leaked:", sentence[:120])
        found, wanted, leaked, shown = totals(results)
        print(
            f"{part}: article sentences {found}/{wanted} = {found / wanted:.1%}; "
            f"sentences leaked {leaked}/{shown} = {leaked / shown:.1%}"
        )
