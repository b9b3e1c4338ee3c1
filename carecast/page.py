"""The article of an item whose HTML is a whole web page, not a post: a feed that carries the page itself.

trafilatura finds the article, telling it from menus, sidebars, comments and footers by text and link density (see
the README for why trafilatura). Before it reads the page, what it would lose is put in a form it keeps: a
video player becomes a link to the video (it keeps no frame), and each data table a paragraph of a marker, put back
after (it moved a table nested in a layout table to the end of the article, or lost it, and flattened one in a
quote); and what the page's template puts in and around the article that trafilatura would keep goes
(:func:`carecast.furniture.drop_page_furniture`).
"""

from __future__ import annotations

import re

import lxml.html

from carecast.furniture import drop_page_furniture
from carecast.reader import watch_url

_WHOLE_PAGE = re.compile(r"<(?:html|body)[\s>]", re.IGNORECASE)
_MARKER = re.compile(
    r"<p>Table (carecasttable\d{4}x) of the article\.</p>|(?:Table )?(carecasttable\d{4}x)(?: of the article\.)?"
)


def main_content(html: str, base_url: str | None) -> str:
    """The article of ``html`` when it is a whole page (an ``<html>`` or ``<body>``), found by trafilatura. A
    fragment (a feed's ``content:encoded``) is the post already and is returned as it is, as is a page trafilatura
    finds nothing in. Raises nothing."""
    if not _WHOLE_PAGE.search(html[:5000]):
        return html
    import trafilatura  # about 0.4 s to import: paid only by a run that meets a whole page

    try:
        page = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return html
    players_as_links(page)
    drop_page_furniture(page)
    stash = stash_tables(page)
    article = trafilatura.extract(
        lxml.html.tostring(page, encoding="unicode"),
        url=base_url,
        output_format="html",
        include_tables=True,
        include_images=True,
        include_links=True,
        include_comments=False,
        favor_recall=True,
    )
    return restore_tables(article, stash) if article else html


def players_as_links(page: lxml.html.HtmlElement) -> None:
    """Replace each YouTube or Vimeo player of ``page`` with a paragraph linking to its video."""
    for player in list(page.iter("iframe", "video")):
        watch = watch_url(player.get("src") or player.get("data-src") or "")
        if watch and player.getparent() is not None:
            link = lxml.html.Element("a", href=watch)
            link.text = player.get("title") or watch
            paragraph = lxml.html.Element("p")
            paragraph.append(link)
            paragraph.tail = player.tail
            player.getparent().replace(player, paragraph)


def stash_tables(page: lxml.html.HtmlElement) -> dict[str, str]:
    """Replace each data table of ``page`` (two rows of two cells or more, no table inside) that sits in a layout
    table with a paragraph of a marker, and return each marker's table (as HTML) to put back in the
    article (:func:`restore_tables`); such a table of links only is a menu, dropped. trafilatura moved a table it
    found in a layout table to the end of the article and flattened one in a quote; a marker is a paragraph, kept
    in its place when that place is in the article."""
    stash: dict[str, str] = {}
    for quote in list(page.iter("blockquote")):  # a quote of a table alone indents it: trafilatura drops it
        if [child.tag for child in quote if isinstance(child.tag, str)] == ["table"]:
            quote.tag = "div"
    for table in list(page.iter("table")):
        rows = [row for row in table.iter("tr") if len(row.findall("td") + row.findall("th")) >= 2]
        if table.find(".//table") is not None or table.getparent() is None or len(rows) < 2:
            continue  # a layout table, or a column of text trafilatura reads well
        if next(table.iterancestors("table"), None) is None:
            continue  # trafilatura keeps a table that stands alone (a marker would add words to a sidebar)
        if _is_menu(table):
            table.drop_tree()
            continue
        marker = f"carecasttable{len(stash):04d}x"
        paragraph = lxml.html.Element("p")
        paragraph.text, paragraph.tail = f"Table {marker} of the article.", table.tail
        table.tail = None
        stash[marker] = lxml.html.tostring(table, encoding="unicode")
        table.getparent().replace(table, paragraph)
    return stash


def restore_tables(article: str, stash: dict[str, str]) -> str:
    """``article`` with each table marker trafilatura kept replaced by its table."""
    return _MARKER.sub(lambda match: stash.get(match.group(1) or match.group(2), ""), article)


def _is_menu(table: lxml.html.HtmlElement) -> bool:
    """A table of links and nothing else (a site's menu laid out in cells), read as a table it would be kept."""
    text = "".join(table.text_content().split())
    linked = "".join("".join(link.text_content().split()) for link in table.iter("a"))
    return table.find(".//table") is None and len(table.findall(".//a")) >= 4 and len(linked) >= 0.9 * len(text)
