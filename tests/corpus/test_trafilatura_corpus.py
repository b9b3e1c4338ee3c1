"""Real pages nobody here wrote, second corpus: 60 of trafilatura's evaluation pages, each read as the one item of a
feed. Over every page: no crash; the article snippets the benchmark names are in the full body; few of the
boilerplate snippets it names leak into it. The figures are printed (``pytest -s``) and kept in the README.

The floors are the figures last measured (tuning part: after the end-of-post, menu and credit rules of
``carecast/boilerplate.py``; both held-out parts: measured before and after them, the same), so a change that loses
article text or lets more boilerplate through fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from carecast.config import Settings
from carecast.practice import load_settings
from tests.conftest import SAMPLE_CONFIG
from tests.corpus.measure import check_newsletters
from tests.corpus.parts import totals
from tests.corpus.trafilatura_eval import entries, measure, read_entry

#: part: (least share of article snippets shown, most share of boilerplate snippets leaked)
FLOORS = {"tuning": (0.98, 0.063), "held_out": (0.94, 0.167), "held_out_2": (0.98, 0.102)}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(SAMPLE_CONFIG / "carecast.yaml")


@pytest.mark.parametrize("part", sorted(FLOORS))
def test_every_page_is_read_its_article_kept_and_little_boilerplate(
    settings: Settings, tmp_path: Path, part: str
) -> None:
    figures = [measure(entry, read_entry(entry, tmp_path, settings)) for entry in entries(part)]
    found, wanted, leaked, unwanted = totals(figures)
    print(
        f"\ntrafilatura's pages, {part}: {len(figures)} read, none failed; article snippets {found}/{wanted} = "
        f"{found / wanted:.1%}; boilerplate snippets leaked {leaked}/{unwanted} = {leaked / unwanted:.1%}"
    )
    least, most = FLOORS[part]
    assert found / wanted >= least
    assert leaked / unwanted <= most


@pytest.mark.parametrize("part", sorted(FLOORS))
def test_the_full_newsletter_of_every_page_keeps_its_tables_and_pictures_and_fits_a_phone(
    settings: Settings, tmp_path: Path, part: str
) -> None:
    """Each page as the one article of the full newsletter: its tables a table in the email and rows in the text,
    its pictures at real URLs, no sideways scroll at 375 px in headless Chromium, images on and off. A pass/fail
    check of the rendering (the held-out parts' text is neither printed nor read)."""
    items = [(str(entry["page"]), read_entry(entry, tmp_path, settings)) for entry in entries(part)]
    check_newsletters(f"trafilatura's pages, {part}", items, settings, tmp_path)
