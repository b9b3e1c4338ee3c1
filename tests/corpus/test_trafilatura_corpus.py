"""Real pages nobody here wrote, second corpus: 60 of trafilatura's evaluation pages, each read as the one item of a
feed. Over every page: no crash; the article snippets the benchmark names are in the full body; few of the
boilerplate snippets it names leak into it. The figures are printed (``pytest -s``) and kept in the README.

The floors are the figures last measured (tuning part: after the end-of-post, menu and credit rules of
``carecast/boilerplate.py``; both held-out parts: measured before and after them, the same), so a change that loses
article text or lets more boilerplate through fails here.
"""

from __future__ import annotations

from tests.corpus.parts import part_tests
from tests.corpus.trafilatura_eval import entries, measure, read_entry

#: part: (least share of article snippets shown, most share of boilerplate snippets leaked)
FLOORS = {"tuning": (0.98, 0.063), "held_out": (0.94, 0.167), "held_out_2": (0.98, 0.102)}
#: Pages per part, chosen once by the rule in tests/corpus/trafilatura/README.md.
PAGES = {"tuning": 28, "held_out": 12, "held_out_2": 20}

#: The corpus as the printed figures name it.
CORPUS = "trafilatura's pages"
#: What the figures count: the article's pieces shown, the pieces leaked.
UNITS = ("article snippets", "boilerplate snippets leaked")


(
    test_every_page_is_read_its_article_kept_and_little_boilerplate,
    test_the_full_newsletter_of_every_page_keeps_its_tables_and_pictures_and_fits_a_phone,
) = part_tests(CORPUS, UNITS, FLOORS, PAGES, entries, read_entry, measure)
