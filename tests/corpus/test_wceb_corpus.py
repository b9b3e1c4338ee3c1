"""Real pages nobody here wrote, fourth corpus: 151 article pages of the Web Content Extraction Benchmark (2026),
each read as the one item of a feed. Over every page: no crash; the sentences of the benchmark's article text
(``main_content``) are in the full body; few of the boilerplate snippets it names (``without``) leak into it; the full
newsletter keeps the page's tables and pictures and fits a phone. The figures are printed (``pytest -s``) and kept in
the README and ``tests/corpus/wceb/README.md``.

The floors are the figures last measured, so a change that loses article text or lets more boilerplate through
fails here.
"""

from __future__ import annotations

from tests.corpus.parts import part_tests
from tests.corpus.wceb_eval import entries, measure, read_entry

#: part: (least share of the article's sentences shown, most share of the boilerplate snippets shown).
FLOORS = {"tuning": (0.962, 0.035), "held_out": (0.959, 0.03)}
#: Pages per part, chosen once by the rule in tests/corpus/wceb/README.md.
PAGES = {"tuning": 51, "held_out": 100}

#: The corpus as the printed figures name it.
CORPUS = "Web Content Extraction Benchmark pages"
#: What the figures count: the article's pieces shown, the pieces leaked.
UNITS = ("article sentences in the full body", "boilerplate snippets shown")


(
    test_every_page_is_read_its_article_kept_and_little_boilerplate,
    test_the_full_newsletter_of_every_page_keeps_its_tables_and_pictures_and_fits_a_phone,
) = part_tests(CORPUS, UNITS, FLOORS, PAGES, entries, read_entry, measure)
