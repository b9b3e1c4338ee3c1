"""Measure how CareCast reads the pages of Murrough Foley's Web Content Extraction Benchmark (2026): each page wrapped
as a feed item, read as a feed is, its full body compared with the benchmark's ground truth.

The benchmark gives, per page, the article's text (``main_content``) and a few snippets of the page that are not the
article (``without``: menus, sign-ins, cookie banners, footers). A page scores by two shares: of the article's
sentences (of at least MIN_WORDS words), how many the full-body rendering shows, in its text or in its HTML (a
table's row, which the benchmark writes "cell | cell" and the text rendering "label: header value", is a row of the
email's table; the measure before 2026-12-05 22:50 UTC read the text only); of the ``without`` snippets, how many
the text shows (leaked). A snippet of fewer than MIN_WORDS words ("Home", "Log in") leaks only when a line of the
rendering is that snippet, since the article's own sentences hold such words; a snippet the article's text itself
holds is not counted. The pages were split once, before any measure: ``tuning`` (looked at while changing the
reader) and ``held_out`` (measured once before and once after a change, never looked at page by page). See
``tests/corpus/wceb/README.md``.

Used by ``tests/corpus/test_wceb_corpus.py``; ``python -m tests.corpus.wceb_eval [PART] [-v]`` prints every page.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import lxml.html

from carecast.config import Settings
from carecast.document import render_html, render_text
from carecast.model import ContentItem
from tests.corpus.measure import FULL_BODY, HERE, comparable, read_html_page
from tests.corpus.parts import EntryFigures, print_part
from tests.corpus.zyte_eval import MIN_WORDS, sentences

WCEB = HERE / "wceb"


def entries(part: str) -> list[dict[str, object]]:
    """The pages of one part (``tuning``, ``held_out``): file id, address, title, ``main_content``, ``with`` and
    ``without`` snippets."""
    parts: dict[str, list[dict[str, object]]] = json.loads((WCEB / "expected.json").read_text("utf-8"))
    return parts[part]


def page_html(entry: dict[str, object]) -> str:
    """The page of ``entry``, as the benchmark keeps it (gzipped)."""
    return gzip.decompress((WCEB / "pages" / f"{entry['page']}.html.gz").read_bytes()).decode("utf-8")


def read_entry(entry: dict[str, object], folder: Path, settings: Settings) -> ContentItem:
    """The page of ``entry`` as the one item of an RSS feed."""
    return read_html_page(f"wceb-{entry['page']}", str(entry["url"]), page_html(entry), folder, settings)


def _leaked(snippet: str, text: str, lines: set[str]) -> bool:
    """Whether the rendering (folded ``text``, folded ``lines``) shows the boilerplate ``snippet``."""
    folded = comparable(snippet)
    if not folded:
        return False
    return folded in lines if len(snippet.split()) < MIN_WORDS else folded in text


def measure(entry: dict[str, object], item: ContentItem) -> EntryFigures:
    """Compare the item's full-body text with the page's article text and its boilerplate snippets."""
    rendered = render_text(item.body, FULL_BODY)
    article = str(entry["main_content"])
    text, expected = comparable(rendered), comparable(article)
    html = render_html(item.body)
    email = comparable(lxml.html.fromstring(html).text_content()) if html else ""
    lines = {comparable(line) for line in rendered.splitlines()}
    wanted = sentences(article)
    unwanted = [str(s) for s in entry["without"] if comparable(str(s)) not in expected]  # type: ignore[attr-defined]
    return EntryFigures(
        name=str(entry["page"]),
        wanted=len(wanted),
        missing=tuple(s for s in wanted if comparable(s) not in text and comparable(s) not in email),
        known=len(unwanted),
        leaked=tuple(s for s in unwanted if _leaked(s, text, lines)),
    )


if __name__ == "__main__":
    print_part(entries, read_entry, measure, ("article sentences", "boilerplate snippets leaked"))
