"""What the modules that read a page's or a post's HTML tree share (:mod:`carecast.html`, :mod:`carecast.page`,
:mod:`carecast.furniture`, :mod:`carecast.frame`, :mod:`carecast.reader`, :mod:`carecast.postlines`): which tags are
headings, an element's words (and those a reader sees), whether its id names it, and whether a body is a whole page.
It imports nothing of CareCast's, so each of them imports it without a cycle (:mod:`carecast.html` imports
:mod:`carecast.page`, not the other way).
"""

from __future__ import annotations

import re

import lxml.html

HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
#: An id of so many words or more, all of them the element's own, is the anchor of its text, not a name.
_ANCHOR_WORDS = 4
_LETTERS = re.compile(r"[^\W\d_]+")
_WHOLE_PAGE = re.compile(r"<(?:html|body)[\s>]", re.IGNORECASE)


def is_whole_page(html: str) -> bool:
    """Whether ``html`` is a whole web page (an ``<html>`` or ``<body>`` near its start), not a feed's fragment."""
    return bool(_WHOLE_PAGE.search(html[:5000]))


def words(element: lxml.html.HtmlElement) -> list[str]:
    """The words of ``element``'s text, its descendants' included."""
    return element.text_content().split()


#: What holds code, not words a reader sees (an embed's ``<style>``, a widget's ``<script>``).
_CODE = ("script", "style", "template", "noscript")


def shown_words(element: lxml.html.HtmlElement) -> int:
    """How many words of ``element`` a reader sees: its words less those of the code inside it."""
    return len(words(element)) - sum(len(words(code)) for code in element.iter(*_CODE))


def unlinked_words(element: lxml.html.HtmlElement) -> int:
    """How many words of ``element`` a reader sees outside links (none when ``element`` is inside a link)."""
    if next(element.iterancestors("a"), None) is not None:
        return 0
    outermost = [link for link in element.iter("a") if next(link.iterancestors("a"), None) is None]
    return shown_words(element) - sum(len(words(link)) for link in outermost)


def flat_text(element: lxml.html.HtmlElement) -> str:
    """``element``'s text on one line, its runs of white space one space."""
    return " ".join(words(element))


def naming_id(element: lxml.html.HtmlElement) -> str:
    """``element``'s id as a name of what it is: empty when the id spells the element's own words (a heading's
    anchor, ``what-share-of-adolescents-report-…``), which says what it says, not what kind of block it is."""
    found = str(element.get("id") or "")
    spelled = set(_LETTERS.findall(found.lower()))
    if len(spelled) >= _ANCHOR_WORDS and spelled <= set(_LETTERS.findall(element.text_content().lower())):
        return ""
    return found
