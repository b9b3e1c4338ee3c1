"""What trafilatura's choice of a page's frame (the element it reads as the article) loses, given back: before it
reads the page, the chunks after the first of an article body split into several (WIRED sets every few paragraphs
in a container of its own, between advertisements; trafilatura reads the first element its ``BODY_XPATH`` finds and
nothing after it) join the first (:func:`join_chunks`); after, on a page where it finds no frame at all and
recovers the page's paragraphs one by one, the headings it never recovers go back over their sections
(:func:`with_headings`); and before it reads the page, the blocks of the article's prose that its name rules would
discard by a word of their class lose that word (:func:`unname_prose`), and a block its class names a heading
becomes one (:func:`named_headings`): trafilatura keeps a ``<div>``'s text only through its bold, and a paragraph
as a paragraph.
"""

from __future__ import annotations

import re
from functools import lru_cache

import lxml.etree
import lxml.html

from carecast.furniture import ARTICLE_PARAGRAPH_WORDS, FURNITURE_WORDS, holds_article_paragraph, is_quote_in_prose
from carecast.markup import HEADINGS, flat_text, shown_words, unlinked_words, words

#: The headings trafilatura's recovery of a page without a frame loses (the page's headline is the item's title).
_HEADINGS = ("h2", "h3", "h4", "h5", "h6")


def join_chunks(root: lxml.html.HtmlElement) -> None:
    """Move into the element trafilatura takes for the article's body (the first that its ``BODY_XPATH`` finds in
    ``root``) the content of each later element of the same tag and class that continues the article: each holds a
    paragraph of an article's length (:func:`carecast.furniture.holds_article_paragraph`), sits in containers of
    the same tags and classes, and no headline (``<h1>``) nor other ``<article>`` starts between them. A feed of
    several articles, each under its headline, and the excerpts of other posts (short, or in an ``<article>`` of
    their own) stay where they are. Raises nothing."""
    from trafilatura.xpaths import BODY_XPATH  # trafilatura's own rule, not a copy of its words

    found: list[lxml.html.HtmlElement] = next((hits for hits in (e(root) for e in BODY_XPATH) if hits), [])
    if len(found) < 2 or not holds_article_paragraph(found[0]):
        return
    first = found[0]
    order = {element: index for index, element in enumerate(root.iter())}
    for chunk in found[1:]:
        if (chunk.tag, chunk.get("class")) != (first.tag, first.get("class")) or not holds_article_paragraph(chunk):
            continue
        if first in set(chunk.iterancestors()) or chunk in set(first.iterancestors()):
            continue
        if not _alike(first, chunk) or _starts_between(root, order, first, chunk):
            continue
        _move_content(chunk, first)


def _path(element: lxml.html.HtmlElement, stop: lxml.html.HtmlElement) -> list[tuple[str, str]]:
    """The tags and classes of ``element``'s ancestors below ``stop``."""
    path = []
    for ancestor in element.iterancestors():
        if ancestor is stop:
            break
        path.append((str(ancestor.tag), str(ancestor.get("class") or "")))
    return path


def _alike(first: lxml.html.HtmlElement, chunk: lxml.html.HtmlElement) -> bool:
    """Whether ``chunk`` sits in containers of the same tags and classes as ``first`` below their common one."""
    ancestors = set(first.iterancestors())
    common = next((a for a in chunk.iterancestors() if a in ancestors), None)
    return common is not None and _path(first, common) == _path(chunk, common)


def _starts_between(
    root: lxml.html.HtmlElement,
    order: dict[lxml.html.HtmlElement, int],
    first: lxml.html.HtmlElement,
    chunk: lxml.html.HtmlElement,
) -> bool:
    """Whether a headline or an ``<article>`` outside ``first`` starts between ``first`` and ``chunk``."""
    inside = set(first.iter())
    return any(
        order[first] < order[element] < order[chunk] and element not in inside for element in root.iter("h1", "article")
    )


def _move_content(chunk: lxml.html.HtmlElement, first: lxml.html.HtmlElement) -> None:
    """Append ``chunk``'s text and children to ``first``; ``chunk`` is left empty in its place."""
    if chunk.text:
        if len(first):
            first[-1].tail = f"{first[-1].tail or ''}{chunk.text}"
        else:
            first.text = f"{first.text or ''}{chunk.text}"
        chunk.text = None
    first.extend(list(chunk))


#: The blocks of an article a heading stands over.
_BLOCKS = ("p", "ul", "ol", "table", "blockquote", "pre")
#: Where a page gives its title: its headline says the same, or part of it.
_TITLES = "//head/title/text() | //meta[@property='og:title']/@content | //meta[@name='twitter:title']/@content"
#: A section's heading is found again in the article by its first paragraph's so many first characters.
_KEY_CHARACTERS = 60


def with_headings(article: lxml.html.HtmlElement, page: lxml.html.HtmlElement) -> None:
    """Put back in ``article`` (trafilatura's) each heading (``<h2>`` to ``<h6>``) of ``page`` that it left out
    while keeping the block right under it (a paragraph, a list, a table): trafilatura, when it finds no element
    framing the article (a page of utility classes only), recovers the page's paragraphs, lists and tables, but
    never its headings. A heading over a block the article does not hold (a sidebar's, a newsletter box's) stays
    out, as does one whose words the article shows already as a heading or a paragraph, and the page's headline
    set as an ``<h2>`` (its words in the page's title). Raises nothing."""
    body = article.find("body")
    if body is None:
        return
    shown = {flat_text(element) for element in body.iter(*_HEADINGS, "p")}
    starts = {
        flat_text(element)[:_KEY_CHARACTERS]: element
        for element in reversed(list(body.iter(*_BLOCKS)))
        if words(element)
    }
    titles = [" ".join(str(title).split()).casefold() for title in page.xpath(_TITLES)]
    for heading in page.iter(*_HEADINGS):
        text = flat_text(heading)
        following = next((e for e in heading.itersiblings() if isinstance(e.tag, str) and words(e)), None)
        if not text or text in shown or following is None or following.tag not in _BLOCKS:
            continue
        if any(text.casefold() in title for title in titles):
            continue  # the page's headline, set as an <h2>: the item's title shows it
        block = starts.get(flat_text(following)[:_KEY_CHARACTERS])
        if block is None or block.getparent() is None:
            continue
        restored = lxml.html.Element(str(heading.tag))
        restored.text = text
        block.addprevious(restored)
        shown.add(text)


#: trafilatura's names for lists, their items and folds: it renames these tags before its name rules read classes.
_TRAFILATURA_TAGS = {
    "ul": "list",
    "ol": "list",
    "dl": "list",
    "li": "item",
    "dd": "item",
    "dt": "item",
    "details": "div",
}
#: The article's prose set in like blocks: so many at least (its paragraphs, a listicle's items, an FAQ's folds).
_PROSE_RUN = 3
#: A block of prose has at most this share of its words in links.
_PROSE_LINKED = 0.25


def unname_prose(root: lxml.html.HtmlElement) -> None:
    """Take from each block of the article's prose the words of its class that trafilatura discards a block by
    (its ``OVERALL_DISCARD_XPATH``, read as parts of words: ``contextmenu`` is a menu, ``listicle-slides`` a slide,
    Webflow's ``w-embed`` an embed, ``expandable`` a fold), which would drop the article's paragraphs whole. A block
    is the article's prose when at most :data:`_PROSE_LINKED` of its words are links, it holds words outside links
    (a ``<p>``, whose sentence may be short) or :data:`ARTICLE_PARAGRAPH_WORDS` of them (any other block), and it
    is one of :data:`_PROSE_RUN` blocks or more of its tag and class holding more than :data:`FURNITURE_WORDS` such
    words together: a menu is links, and a box of furniture (a cookie banner, an author's bio, a footer's line)
    stands alone. A box around a table of data that holds most of its words is the article's too
    (:func:`_is_table_box`), as is a quote set alone between the article's paragraphs (an embedded post in a
    ``widget``, a pull quote in an ``embed`` or a ``contextmenu``: :func:`carecast.furniture.is_quote_in_prose`).
    Raises nothing."""
    runs: dict[tuple[str, str], list[lxml.html.HtmlElement]] = {}
    for element in root.xpath("//*[@class]"):
        runs.setdefault((element.tag, str(element.get("class"))), []).append(element)
    run_words: dict[tuple[str, str], int] = {}  # a run's words, counted once: a page repeats its classes in dozens
    for element in _discarded_by_name(root):
        if _is_prose_run(element, runs, run_words) or _is_table_box(element) or is_quote_in_prose(element):
            element.set("class", " ".join(t for t in str(element.get("class")).split() if not _discards(t)))
            if _discards(str(element.get("class"))):
                del element.attrib["class"]  # a name told by its words together (" ad ")


def _is_prose_run(
    element: lxml.html.HtmlElement,
    runs: dict[tuple[str, str], list[lxml.html.HtmlElement]],
    run_words: dict[tuple[str, str], int],
) -> bool:
    key = (element.tag, str(element.get("class") or ""))
    run = runs.get(key, [])
    if len(run) < _PROSE_RUN:
        return False
    if key not in run_words:
        run_words[key] = sum(unlinked_words(block) for block in run)
    if run_words[key] <= FURNITURE_WORDS:
        return False
    unlinked = unlinked_words(element)
    size = 1 if element.tag == "p" else ARTICLE_PARAGRAPH_WORDS  # a paragraph's sentence may be short
    return unlinked >= size and unlinked >= (1 - _PROSE_LINKED) * shown_words(element)


def _is_table_box(element: lxml.html.HtmlElement) -> bool:
    """Whether ``element`` is a box around a table of data (two rows of two cells or more, no table inside, at most
    half its words linked) that holds most of its words: Webflow sets every table of a post in such a box."""
    for table in element.iter("table"):
        rows = [row for row in table.iter("tr") if len(row.findall("td") + row.findall("th")) >= 2]
        found = shown_words(table)
        if len(rows) >= 2 and table.find(".//table") is None and found >= (1 - _PROSE_LINKED) * shown_words(element):
            return unlinked_words(table) >= found / 2
    return False


def _discarded_by_name(root: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    """The elements of ``root`` with a class that trafilatura's name rules discard, its tags renamed as it reads
    them."""
    from trafilatura.xpaths import OVERALL_DISCARD_XPATH  # trafilatura's own rule, not a copy of its words

    # Renamed in place and back (a copy of a whole page cost more than the rule itself).
    renamed = [(element, str(element.tag)) for element in root.iter(*_TRAFILATURA_TAGS)]
    try:
        for element, tag in renamed:
            element.tag = _TRAFILATURA_TAGS[tag]
        found = OVERALL_DISCARD_XPATH[0](root)
    finally:
        for element, tag in renamed:
            element.tag = tag
    return [element for element in found if element.get("class")]


@lru_cache(maxsize=4096)  # a page's class names recur in its blocks, and a site's in its pages
def _discards(names: str) -> bool:
    """Whether trafilatura's name rules discard a block of class ``names``."""
    from trafilatura.xpaths import OVERALL_DISCARD_XPATH

    holder = lxml.etree.Element("body")
    lxml.etree.SubElement(holder, "div", {"class": names})
    return bool(OVERALL_DISCARD_XPATH[0](holder))


#: What a class calls a heading a page sets in a ``<div>`` or ``<p>`` (``heading-h3``, ``pf_subheadline``), read by
#: its parts; a part ``h2`` to ``h6`` gives its level.
_HEADING_NAMES = frozenset({"heading", "subheading", "subhead", "subheadline", "h2", "h3", "h4", "h5", "h6"})
_NAME_PARTS = re.compile(r"[^\W_]+")
#: A heading has at most so many words; a longer block so named is a section holding its heading and text.
_HEADING_WORDS = 20
_INSIDE_HEADING = frozenset({"p", "div", "ul", "ol", "table", "img", "figure", "blockquote"}) | HEADINGS


def named_headings(page: lxml.html.HtmlElement) -> None:
    """Make each ``<div>`` or ``<p>`` of ``page`` that its class names a heading (:data:`_HEADING_NAMES`), short
    (:data:`_HEADING_WORDS` words at most) and holding no block, the heading it is (``<h2>`` unless the class
    gives the level): trafilatura keeps no text a ``<div>`` holds only through its bold (Condé Nast's
    ``div.heading-h3 > strong``), and keeps a paragraph as one, not as the heading over its section. Raises
    nothing."""
    for element in list(page.iter("div", "p")):
        parts = {part.lower() for part in _NAME_PARTS.findall(str(element.get("class") or ""))}
        named = parts & _HEADING_NAMES
        if not named or not 0 < len(words(element)) <= _HEADING_WORDS:
            continue
        if any(child.tag in _INSIDE_HEADING for child in element.iterdescendants()):
            continue
        if next(element.iterancestors(*HEADINGS, "a"), None) is not None:
            continue
        levels = sorted(part for part in named if part[0] == "h" and part[1:].isdigit())
        element.tag = levels[0] if levels else "h2"
