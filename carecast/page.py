"""The article of an item whose HTML is a whole web page, not a post: a feed that carries the page itself.

trafilatura finds the article, telling it from menus, sidebars, comments and footers by text and link density (see
the README for why trafilatura). Before it reads the page, what it would lose is put in a form it keeps: a
video player becomes a link to the video (it keeps no frame), a ``<div>`` its class names a heading becomes one
(:func:`carecast.frame.named_headings`), a picture only in a ``<noscript>`` takes the place of its lazy placeholder
(it drops a ``<noscript>``), each data table a paragraph of a marker, put back after (it moved a table nested in
a layout table to the end of the article, or lost it, and flattened one in a quote), and each figure's pictures
carry a marker in their ``alt`` so that the caption it drops is put back beside the picture it keeps; what the page's
template puts in and around the article that trafilatura would keep goes
(:func:`carecast.furniture.drop_page_furniture`), and an article body split into chunks is joined
(:func:`carecast.frame.join_chunks`). After it, the page's standfirst, which it leaves out when the page names another
element the article's body, opens the article again (:func:`with_lead`), and the headings it drops from a page
without a frame stand over their sections again (:func:`carecast.frame.with_headings`).
"""

from __future__ import annotations

import copy
import re

import lxml.html

from carecast.frame import join_chunks, named_headings, unname_prose, with_headings
from carecast.furniture import drop_page_furniture, name_words
from carecast.markup import HEADINGS, flat_text, is_whole_page, words
from carecast.postlines import drop_end_notes
from carecast.reader import unwrap_noscript_images, watch_url

#: What pages name the standfirst they set under the headline, apart from the article's body.
_LEAD_CLASSES = re.compile(
    r"(?<![a-z])(?:intro|lead|lede|standfirst|summary|chapo|chapeau|teaser|dek|deck|sapo|subtitle|subheadline"
    r"|excerpt|abstract|description)(?![a-z])",
    re.IGNORECASE,
)
#: A standfirst is prose: this many words at least, ending as a sentence, less than this share of it links.
_LEAD_WORDS = 6
_LINKED = 0.5
#: The article's first paragraph is found in the page by so many of its first characters.
_KEY_CHARACTERS = 60
_SENTENCE_ENDS = (".", "!", "?", "\u2026", "\u3002", '"', "\u201d", "\u00bb")
_NOT_ARTICLE = frozenset({"nav", "aside", "footer", "figure", "figcaption", "form", "ul", "ol", "table", "script"})
_MARKER = re.compile(
    r"<p>Table (carecasttable\d{4}x) of the article\.</p>|(?:Table )?(carecasttable\d{4}x)(?: of the article\.)?"
)


def main_content(html: str, base_url: str | None) -> str:
    """The article of ``html`` when it is a whole page (an ``<html>`` or ``<body>``), found by trafilatura. A
    fragment (a feed's ``content:encoded``) is the post already and is returned as it is, as is a page trafilatura
    finds nothing in. Raises nothing."""
    if not is_whole_page(html):
        return html
    import trafilatura  # about 0.4 s to import: paid only by a run that meets a whole page

    try:
        page = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return html
    players_as_links(page)
    named_headings(page)
    unwrap_noscript_images(page)  # trafilatura drops a <noscript>, and with it a lazy-loading theme's only picture
    drop_page_furniture(page)
    unname_prose(page)  # after: furniture so named is gone, and its words no longer count as the article's prose
    drop_end_notes(page, base_url)  # trafilatura drops the italics that tell an editor's note
    join_chunks(page)
    stash, captions = stash_tables(page), mark_captions(captions_as_figures(small_print_captions(page)))
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
    if not article:
        return html
    try:
        found = lxml.html.document_fromstring(article)
    except (lxml.etree.ParserError, ValueError):
        return restore_tables(article, stash)
    with_lead(found, page)
    with_headings(found, page)
    with_captions(found, captions)  # after: a lead copied from the page carries markers too
    return restore_tables(lxml.html.tostring(found, encoding="unicode"), stash)


#: A caption set outside any figure (a gallery's, a theme's ``wp-caption-text``) has at most so many words.
_CAPTION_WORDS = 80


def captions_as_figures(page: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """Make each caption of a gallery's item that ``page`` sets outside a ``<figure>`` (an element its class or id
    names ``caption``, with no picture inside, in a list item with one picture or in a box its class names a caption
    with its one picture: WordPress's ``wp-caption``) the ``<figcaption>`` of a figure
    around the item's content, so that it is read as its picture's caption: beside it when the picture is kept,
    gone with it when not; never a paragraph of the article. Returns ``page``."""
    for element in list(page.xpath("//*[contains(@class, 'aption') or contains(@id, 'aption')]")):
        if element.tag in ("figcaption", "figure") or "caption" not in name_words(element):
            continue
        if element.find(".//img") is not None or len(element.text_content().split()) > _CAPTION_WORDS:
            continue
        holder = next((a for a in element.iterancestors() if a.find(".//img") is not None), None)
        if holder is None or len(holder.findall(".//img")) > 1:
            continue
        # A caption box around the picture and its caption (wp-caption); in a list, trafilatura would drop a figure
        # whole, where it keeps the box's picture and words.
        # The box holds nothing but them: a container so named that holds the article is no caption box.
        boxed = (
            "caption" in name_words(holder)
            and next(holder.iterancestors("li"), None) is None
            and words(holder) == words(element)
        )
        if any(a.tag == "figure" or ("caption" in name_words(a) and a is not holder) for a in element.iterancestors()):
            continue  # inside a figure, or a part of an outer caption
        if holder.tag != "li" and not boxed:
            continue  # a caption set apart from its picture elsewhere is often the article's own line
        element.tag = "figcaption"
        if boxed:
            holder.tag = "figure"
            continue
        figure = lxml.html.Element("figure")
        figure.text, holder.text = holder.text, None
        figure.extend(list(holder))
        holder.append(figure)
    return page


def small_print_captions(page: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """Make each line in small print set right under a picture (``<small>``, or an element its class names
    ``small``: AppleInsider's ``minor2 small gray``), in a box that holds nothing but the picture and it, the
    ``<figcaption>`` of that box, made a ``<figure>``: it is the picture's caption, never a paragraph of the article.
    Small print inside the author's paragraph, beside words of theirs, stays. Returns ``page``."""
    for element in list(page.xpath("//small | //*[contains(@class, 'small')]")):
        box = element.getparent()
        if box is None or box.tag in ("figure", "p") or element.find(".//img") is not None:
            continue
        if element.tag != "small" and "small" not in name_words(element):
            continue
        found = words(element)
        if not found or len(found) > _CAPTION_WORDS or len(box.findall(".//img")) != 1 or words(box) != found:
            continue
        if next(box.iterancestors("figure", "li"), None) is None:  # in a list trafilatura drops a figure whole
            box.tag, element.tag = "figure", "figcaption"
    return page


def mark_captions(page: lxml.html.HtmlElement) -> dict[str, lxml.html.HtmlElement]:
    """Mark the pictures of each ``<figure>`` of ``page`` that has a caption (a marker added to their ``alt``, which
    trafilatura keeps) and return each marker's ``<figcaption>``: trafilatura keeps a figure's picture and drops its
    caption. Every picture of the figure is marked: which one trafilatura keeps (a lazy placeholder, the one in a
    ``<noscript>``) varies. A ``<figcaption>`` set right after its figure instead of inside it (eHow's) counts.
    The marked captions leave ``page``."""
    captions: dict[str, lxml.html.HtmlElement] = {}
    for caption in page.iter("figcaption"):
        figure = next(caption.iterancestors("figure"), None)
        if figure is None and (previous := caption.getprevious()) is not None and previous.tag == "figure":
            figure = previous
        images = [] if figure is None else list(figure.iter("img"))
        if (
            not images
            or not flat_text(caption)
            or any(word in captions for word in (images[0].get("alt") or "").split())
        ):
            continue  # no picture to caption, nothing to say, or the figure's first caption is marked already
        marker = f"carecastcaption{len(captions):04d}x"
        for image in images:
            image.set("alt", f"{image.get('alt') or ''} {marker}".strip())
        captions[marker] = caption
    for caption in captions.values():  # trafilatura drops most, but keeps one in a list item as its text
        if caption.getparent() is not None:
            caption.drop_tree()
    return captions


def with_captions(article: lxml.html.HtmlElement, captions: dict[str, lxml.html.HtmlElement]) -> None:
    """Set the last picture of each figure marked by :func:`mark_captions` that trafilatura kept in ``article``
    back in a ``<figure>`` with its caption (unless the article shows the caption's words already); take the
    markers out of the ``alt`` texts."""
    last = {}
    for image in article.iter("img"):
        alt = (image.get("alt") or "").split()
        kept = [word for word in alt if word not in captions]
        if len(kept) < len(alt):
            image.set("alt", " ".join(kept))
            last[next(word for word in alt if word in captions)] = image
    shown = flat_text(article) if last else ""
    for marker, image in last.items():
        if flat_text(captions[marker]) in shown or image.getparent() is None:
            continue
        figure = lxml.html.Element("figure")
        image.getparent().replace(image, figure)
        figure.tail, image.tail = image.tail, None
        figure.append(image)
        figure.append(_clone(captions[marker]))


def with_lead(article: lxml.html.HtmlElement, page: lxml.html.HtmlElement) -> None:
    """Open ``article`` (trafilatura's) with the page's lead when trafilatura left it out: the blocks ``page`` names
    a standfirst (:data:`_LEAD_CLASSES`) between its headline (the last ``<h1>`` above the article's first paragraph)
    and that paragraph, outside it, each prose (:data:`_LEAD_WORDS` words or more, ending as a sentence, mostly not
    links) not in the article already; they go after the article's opening headings. trafilatura takes the element
    a page names the article's body (``articleBody``, ``article__text``) and so loses the standfirst set above it."""
    body, first = article.find("body"), next((p for p in article.iter("p") if _is_prose(flat_text(p))), None)
    if body is None or first is None:
        return
    leads = _leads_above(page, flat_text(first)[:_KEY_CHARACTERS])
    shown = flat_text(body) if leads else ""
    leads = [lead for lead in leads if flat_text(lead) not in shown]
    place = next((index for index, child in enumerate(body) if child.tag not in HEADINGS), len(body))
    for offset, lead in enumerate(leads):
        clone = _clone(lead)
        clone.tag = "div" if clone.find(".//p") is not None else "p"
        body.insert(place + offset, clone)


def _leads_above(page: lxml.html.HtmlElement, start: str) -> list[lxml.html.HtmlElement]:
    """The standfirsts of ``page`` between its last ``<h1>`` and the paragraph starting with ``start`` (none when
    there is no such paragraph or no headline above it)."""
    leads: list[lxml.html.HtmlElement] | None = None
    for element in page.iter():
        if element.tag == "h1":
            leads = []
        elif element.tag == "p" and flat_text(element).startswith(start):
            holding = set(element.iterancestors())  # a container of the article itself ("text-with-summary")
            return [lead for lead in leads or [] if lead not in holding]
        elif leads is not None and _is_lead(element, leads):
            leads.append(element)
    return []


def _is_lead(element: lxml.html.HtmlElement, leads: list[lxml.html.HtmlElement]) -> bool:
    """A block the page names its standfirst, in no menu, sidebar, figure, list or table, nor in a lead found."""
    names = " ".join(str(element.get(name) or "") for name in ("class", "id", "itemprop"))
    if not isinstance(element.tag, str) or element.tag in _NOT_ARTICLE or not _LEAD_CLASSES.search(names):
        return False
    if any(ancestor.tag in _NOT_ARTICLE or ancestor in leads for ancestor in element.iterancestors()):
        return False
    text = flat_text(element)
    linked = sum(len(flat_text(link)) for link in element.iter("a"))
    return _is_prose(text) and linked < _LINKED * len(text)


def _is_prose(text: str) -> bool:
    return len(text.split()) >= _LEAD_WORDS and text.endswith(_SENTENCE_ENDS)


def _clone(element: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """A copy of ``element`` without its tail (the text after it, which is not its own)."""
    clone = copy.deepcopy(element)
    clone.tail = None
    return clone


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
