"""What the corpora split into parts (trafilatura's, Zyte's, the Web Content Extraction Benchmark's) share: one page's
figures, a part's totals, the two tests each corpus runs over its parts, and the listing
``python -m tests.corpus.<corpus>_eval [PART] [-v]`` prints.

A page scores by what of the article the full-body rendering shows (``wanted``, ``missing``) and what it shows that
is not the article (``known``: the boilerplate snippets or rendered sentences looked at, ``leaked``).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from carecast.config import Settings
from carecast.model import ContentItem

Entry = dict[str, object]
ReadEntry = Callable[[Entry, Path, Settings], ContentItem]
Test = Callable[[Settings, Path, str], None]


@dataclass(frozen=True)
class EntryFigures:
    """What one page gave: the article's pieces wanted and those missing; the pieces looked at and those leaked."""

    name: str
    wanted: int
    missing: tuple[str, ...]
    known: int
    leaked: tuple[str, ...]


def totals(figures: list[EntryFigures]) -> tuple[int, int, int, int]:
    """The article's pieces found and wanted; the pieces leaked and looked at."""
    wanted = sum(f.wanted for f in figures)
    known = sum(f.known for f in figures)
    return wanted - sum(len(f.missing) for f in figures), wanted, sum(len(f.leaked) for f in figures), known


def check_part(
    corpus: str, part: str, figures: list[EntryFigures], floor: tuple[float, float], units: tuple[str, str]
) -> None:
    """A part's figures as a test asserts them, the same for every corpus: printed under ``corpus``'s name
    (``pytest -s``); the share of the article's pieces shown at least ``floor[0]``, the share of those looked at
    that leaked at most ``floor[1]``. ``units`` name what is counted (article's, leaked)."""
    found, wanted, leaked, known = totals(figures)
    at_95 = sum(f.wanted - len(f.missing) >= 0.95 * f.wanted for f in figures)
    print(
        f"\n{corpus}, {part}: {len(figures)} read, none failed; {units[0]} {found}/{wanted} = {found / wanted:.1%} "
        f"({at_95}/{len(figures)} pages at 95% or more); {units[1]} {leaked}/{known} = {leaked / known:.1%}"
    )
    assert found / wanted >= floor[0]
    assert leaked / known <= floor[1]


def part_tests(
    corpus: str,
    units: tuple[str, str],
    floors: dict[str, tuple[float, float]],
    pages: dict[str, int],
    entries: Callable[[str], list[Entry]],
    read_entry: ReadEntry,
    measure: Callable[[Entry, ContentItem], EntryFigures],
) -> tuple[Test, Test]:
    """A corpus's two tests over each part of ``floors``: every page read, its article kept and little boilerplate
    (:func:`check_part`, after its page count, ``pages``); the full newsletter of every page
    (:func:`check_part_newsletters`). A corpus's test module binds them to its own names, so pytest collects them
    there."""

    @pytest.mark.parametrize("part", sorted(floors))
    def test_every_page_is_read_its_article_kept_and_little_boilerplate(
        settings: Settings, tmp_path: Path, part: str
    ) -> None:
        chosen = entries(part)
        assert len(chosen) == pages[part]
        figures = [measure(entry, read_entry(entry, tmp_path, settings)) for entry in chosen]
        check_part(corpus, part, figures, floors[part], units)

    @pytest.mark.parametrize("part", sorted(floors))
    def test_the_full_newsletter_of_every_page_keeps_its_tables_and_pictures_and_fits_a_phone(
        settings: Settings, tmp_path: Path, part: str
    ) -> None:
        check_part_newsletters(corpus, part, entries(part), read_entry, settings, tmp_path)

    return (
        test_every_page_is_read_its_article_kept_and_little_boilerplate,
        test_the_full_newsletter_of_every_page_keeps_its_tables_and_pictures_and_fits_a_phone,
    )


def check_part_newsletters(
    corpus: str,
    part: str,
    pages: list[Entry],
    read_entry: ReadEntry,
    settings: Settings,
    folder: Path,
) -> None:
    """Each page of a part as the one article of the full newsletter: its tables a table in the email and rows in
    the text, its pictures at real URLs, no sideways scroll at 375 px in headless Chromium, images on and off
    (:func:`tests.corpus.measure.check_newsletters`). A pass/fail check of the rendering: a held-out part's text is
    neither printed nor read."""
    from tests.corpus.measure import check_newsletters

    items = [(str(entry["page"])[:12], read_entry(entry, folder, settings)) for entry in pages]
    check_newsletters(f"{corpus}, {part}", items, settings, folder)


def print_part(
    entries: Callable[[str], list[Entry]],
    read_entry: ReadEntry,
    measure: Callable[[Entry, ContentItem], EntryFigures],
    units: tuple[str, str],
) -> None:
    """Print each page of the part named on the command line (``tuning`` by default) and the part's totals;
    ``-v`` lists what each page missed and leaked. ``units`` name what is counted (article's, leaked)."""
    from carecast.practice import load_settings
    from tests.conftest import SAMPLE_CONFIG

    part = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "tuning")
    settings = load_settings(SAMPLE_CONFIG / "carecast.yaml")
    with tempfile.TemporaryDirectory() as folder:
        results = []
        for entry in entries(part):
            figures = measure(entry, read_entry(entry, Path(folder), settings))
            results.append(figures)
            kept, leaked = figures.wanted - len(figures.missing), len(figures.leaked)
            print(f"{figures.name} {kept}/{figures.wanted} kept, {leaked}/{figures.known} leaked  {entry['url']}")
            if "-v" in sys.argv:
                for piece in figures.missing:
                    print("    missing:", piece[:120])
                for piece in figures.leaked:
                    print("    leaked:", piece[:120])
        found, wanted, lost, known = totals(results)
        share, lost_share = found / wanted, lost / known
        print(f"{part}: {units[0]} {found}/{wanted} = {share:.1%}; {units[1]} {lost}/{known} = {lost_share:.1%}")
