"""Real pages nobody here wrote, third corpus: all 181 pages of Zyte's article-extraction benchmark, each read as the
one item of a feed. Over every page: no crash; the sentences of the benchmark's expected article text (``articleBody``)
are in the full body; few of the full body's sentences are not the article's. The figures are printed
(``pytest -s``) and kept in the README and ``tests/corpus/zyte/README.md``.

The floors are the figures last measured, so a change that loses article text or lets more boilerplate through
fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from carecast.config import Settings
from carecast.practice import load_settings
from tests.conftest import SAMPLE_CONFIG
from tests.corpus.measure import check_newsletters
from tests.corpus.parts import totals
from tests.corpus.zyte_eval import entries, measure, read_entry

#: part: (least share of the article's sentences shown, most share of the shown sentences not the article's).
#: ``held_out_2`` keeps its name but is a tuning set since 2026-12-05 20:14 UTC (looked at page by page and tuned on;
#: see tests/corpus/zyte/README.md); ``held_out`` and ``held_out_3`` have been measured more than twice (not blind).
#: ``held_out_4`` (the pages the first rule skipped for size) was measured twice before its floors were set.
FLOORS = {
    "tuning": (0.979, 0.006),
    "held_out": (0.98, 0.051),
    "held_out_2": (0.975, 0.05),
    "held_out_3": (0.99, 0.048),
    "held_out_4": (0.991, 0.023),
}
#: Pages per part, chosen once by the rule in tests/corpus/zyte/README.md (the part names are kept as chosen).
PAGES = {"tuning": 20, "held_out": 20, "held_out_2": 40, "held_out_3": 37, "held_out_4": 64}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(SAMPLE_CONFIG / "carecast.yaml")


@pytest.mark.parametrize("part", sorted(FLOORS))
def test_every_page_is_read_its_article_kept_and_little_boilerplate(
    settings: Settings, tmp_path: Path, part: str
) -> None:
    pages = entries(part)
    assert len(pages) == PAGES[part]
    figures = [measure(entry, read_entry(entry, tmp_path, settings)) for entry in pages]
    found, wanted, leaked, shown = totals(figures)
    at_95 = sum(f.wanted - len(f.missing) >= 0.95 * f.wanted for f in figures)
    print(
        f"\nZyte's benchmark pages, {part}: {len(figures)} read, none failed; article sentences in the full body "
        f"{found}/{wanted} = {found / wanted:.1%} ({at_95}/{len(figures)} pages at 95% or more); "
        f"sentences not the article's {leaked}/{shown} = {leaked / shown:.1%}"
    )
    least, most = FLOORS[part]
    assert found / wanted >= least
    assert leaked / shown <= most


@pytest.mark.parametrize("part", sorted(FLOORS))
def test_the_full_newsletter_of_every_page_keeps_its_tables_and_pictures_and_fits_a_phone(
    settings: Settings, tmp_path: Path, part: str
) -> None:
    """Each page as the one article of the full newsletter: its tables a table in the email and rows in the text,
    its pictures at real URLs, no sideways scroll at 375 px in headless Chromium, images on and off. A pass/fail
    check of the rendering (the held-out parts' text is neither printed nor read)."""
    items = [(str(entry["page"])[:12], read_entry(entry, tmp_path, settings)) for entry in entries(part)]
    check_newsletters(f"Zyte's benchmark pages, {part}", items, settings, tmp_path)
