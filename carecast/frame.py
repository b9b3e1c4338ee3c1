"""What trafilatura's choice of a page's frame (the element it reads as the article) loses, given back: before it
reads the page, the chunks after the first of an article body split into several (WIRED sets every few paragraphs
in a container of its own, between advertisements; trafilatura reads the first element its ``BODY_XPATH`` finds and
nothing after it) join the first (:func:`join_chunks`); after, on a page where it finds no frame at all and
recovers the page's paragraphs one by one, the headings it never recovers go back over their sections
(:func:`with_headings`).
"""

from __future__ import annotations

import lxml.html

from carecast.furniture import holds_article_paragraph
from carecast.markup import flat_text, words

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
