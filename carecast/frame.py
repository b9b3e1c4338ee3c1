"""The element trafilatura reads as a page's article (its frame), made to hold the whole article before it reads
the page: a page that splits its article's body into chunks (WIRED sets every few paragraphs in a container of its
own, between advertisements) would otherwise lose all but the first, as trafilatura reads the first element its
``BODY_XPATH`` finds and nothing after it.
"""

from __future__ import annotations

import lxml.html

from carecast.furniture import holds_article_paragraph


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
