"""What the modules that read a page's or a post's HTML tree share (:mod:`carecast.html`, :mod:`carecast.page`,
:mod:`carecast.furniture`): which tags are headings, and an element's words. It imports nothing of CareCast's, so
each of them imports it without a cycle (:mod:`carecast.html` imports :mod:`carecast.page`, not the other way).
"""

from __future__ import annotations

import lxml.html

HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


def words(element: lxml.html.HtmlElement) -> list[str]:
    """The words of ``element``'s text, its descendants' included."""
    return element.text_content().split()


def flat_text(element: lxml.html.HtmlElement) -> str:
    """``element``'s text on one line, its runs of white space one space."""
    return " ".join(words(element))
