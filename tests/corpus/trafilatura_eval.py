"""Measure how CareCast reads trafilatura's evaluation pages: each page wrapped as a feed item, read as a feed is.

trafilatura's benchmark gives, per page, a few snippets the article holds (``with``: its first and last sentences,
a list item, a quote) and a few the page holds around it that are not the article (``without``: menus, footers,
dates, share calls). A page scores by how many ``with`` snippets the full-body rendering shows and how many
``without`` snippets leak into it. The pages are split once, before any measure: ``tuning`` (28 pages, looked at
while changing the reader), ``held_out`` (12 pages, measured only at the end; measured four times by now, so no longer
blind) and ``held_out_2`` (the next 20 pages by the same rule, added later; measured once before and once after).

Used by ``tests/corpus/test_trafilatura_corpus.py``; ``python -m tests.corpus.trafilatura_eval [PART] [-v]``
prints every page.
"""

from __future__ import annotations

import json
from pathlib import Path

from carecast.config import Settings
from carecast.document import render_html, render_text
from carecast.model import ContentItem
from tests.corpus.measure import FULL_BODY, HERE, comparable, read_html_page
from tests.corpus.parts import EntryFigures, print_part

TRAFILATURA = HERE / "trafilatura"


def entries(part: str) -> list[dict[str, object]]:
    """The pages of one part (``tuning``, ``held_out``, ``held_out_2``): name, address, ``with`` and ``without``
    snippets."""
    parts: dict[str, list[dict[str, object]]] = json.loads((TRAFILATURA / "expected.json").read_text("utf-8"))
    return parts[part]


def read_entry(entry: dict[str, object], folder: Path, settings: Settings) -> ContentItem:
    """The page of ``entry`` as the one item of an RSS feed, read by CareCast's RSS source (``read_html_page``)."""
    name = str(entry["page"])
    html = (TRAFILATURA / "pages" / f"{name}.html").read_text(encoding="utf-8")
    return read_html_page(name, str(entry["url"]), html, folder, settings)


def measure(entry: dict[str, object], item: ContentItem) -> EntryFigures:
    """Compare the item's full body (text, and the HTML for the links a snippet may be) with the snippets."""
    text = comparable(render_text(item.body, FULL_BODY))
    html = render_html(item.body)
    wanted = [str(snippet) for snippet in entry["with"]]  # type: ignore[attr-defined]
    unwanted = [str(snippet) for snippet in entry["without"]]  # type: ignore[attr-defined]
    return EntryFigures(
        name=str(entry["page"]),
        wanted=len(wanted),
        missing=tuple(s for s in wanted if comparable(s) not in text and s not in html),
        known=len(unwanted),
        leaked=tuple(s for s in unwanted if comparable(s) and comparable(s) in text),
    )


if __name__ == "__main__":
    print_part(entries, read_entry, measure, ("article snippets", "boilerplate leaked"))
