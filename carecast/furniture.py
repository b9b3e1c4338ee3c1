"""What a page's template puts in and around its article, told by structure and removed from the page's tree before
trafilatura reads it (it keeps these, and drops the classes that told them): hover cards inlined in a sentence, boxes
around a form to fill, the page's own dates (schema.org), what classes, ids and ARIA roles name as furniture (sidebars,
calls to comment, related links, advertisements), grids of linked cards of other pages, the site's licence line, image
credits, boxes of badge links (an app's store badges) with their call, a platform's credit in small print ("Powered by
…"), a note in small print over the comments (a moderation policy), the post's own permalink line (its date and reading
time), entries of other posts inside the article (their permalink elsewhere), the post's line of tags. Each rule is by
structure (tags, attributes, words inside and outside links, size), in every language; the author's own text of the same
shape (a date or linked pictures in a sentence, an element so named that holds the article, a quote between its
paragraphs in a box so named: :func:`is_quote_in_prose`) stays (the other way round, the article's prose that
trafilatura would discard by a word of its class: :func:`carecast.frame.unname_prose`). What is left around the post is
trimmed from its document afterwards (:mod:`carecast.boilerplate`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import lxml.etree
import lxml.html

from carecast.markup import HEADINGS, flat_text, naming_id, shown_words, unlinked_words, words
from carecast.reader import is_credit


def drop_page_furniture(page: lxml.html.HtmlElement) -> None:
    """Remove from ``page`` (a whole page's tree) every kind of furniture this module knows. Raises nothing."""
    drop_hover_cards(page)
    drop_form_boxes(page)
    drop_dates(page)
    drop_named_furniture(page)
    drop_card_grids(page)
    drop_licence_lines(page)
    drop_badge_boxes(page)
    drop_platform_credits(page)
    drop_permalink_lines(page)
    drop_notes_over_comments(page)
    drop_other_entries(page)
    drop_tag_lines(page)
    for credit in [element for element in page.xpath("//*[@class or @id]") if is_credit(element)]:
        if credit.getparent() is not None:
            credit.drop_tree()  # trafilatura keeps a credit's words and drops its class, which told it


#: Tags that stay inside a sentence: a card held by one of them is inlined in the text around it.
_INLINE = frozenset({"span", "small", "font", "em", "strong", "b", "i", "label", "cite"})
#: A hover card shows a picture and this many links at least (the person's page, their articles, "more").
_CARD_LINKS = 3


def drop_hover_cards(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` each card a page shows on hover inside a sentence (a person's picture, name and latest
    articles, The Hill's ``rollover-people``): an inline element of a paragraph holding a picture and
    :data:`_CARD_LINKS` links or more, its words nearly all links, with words of the paragraph outside it. Read as
    text, it would run into the middle of the sentence. The innermost such element goes (the name linked in the
    sentence stays); an author's inline picture beside a few links in words of their own is no card."""
    for element in list(root.iter(*_INLINE)):
        if element.getparent() is None or next(element.iterancestors("p"), None) is None:
            continue
        if any(_is_card(child) for child in element.iter(*_INLINE) if child is not element):
            continue  # the innermost card goes, not what holds it
        if _is_card(element):
            paragraph = next(element.iterancestors("p"))
            if len(words(paragraph)) > len(words(element)):
                element.drop_tree()


#: A box around a form (a sign-up, an app's download link) holds at most so many words (and characters: a line of
#: Japanese is one "word"): its call, its thank-you and error panes; and no paragraph of prose (so many words),
#: which would be a short post's own.
_FORM_BOX_WORDS = 60
_FORM_BOX_CHARACTERS = 400
_PROSE_WORDS = 20
_TEXT_FIELDS = frozenset({"text", "email", "tel", ""})
#: What holds a page's article, never taken for a box, however short the post.
_PAGE_PARTS = frozenset({"html", "body", "main", "article"})


def drop_form_boxes(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` each box around a form with a field to fill (a newsletter's sign-up, WebMD's "send
    yourself a link to the app"): the largest element around the form of at most :data:`_FORM_BOX_WORDS` words and
    no paragraph of prose. Its words are the widget's, shown or not (its call, "Please wait...", "Thanks! Now check
    your inbox", "This feature is temporarily unavailable"), never the post's."""
    for form in list(root.iter("form")):
        fields = {(field.get("type") or "").lower() for field in form.iter("input")}
        if form.getparent() is None or not fields & _TEXT_FIELDS or not _is_box(form):
            continue  # a form around the whole page (ASP.NET's) is no widget
        box = form
        for parent in form.iterancestors():
            if parent is root or parent.tag in _PAGE_PARTS or not _is_box(parent):
                break
            box = parent
        if box.getparent() is not None:  # none when the box is one already dropped (a modal of two forms)
            box.drop_tree()


#: schema.org's properties of a page's dates: the publication line, not the article's words.
_DATES = frozenset({"datepublished", "datemodified", "datecreated", "uploaddate"})
#: A line of a date (and its "Posted on", "by …") has at most so many words; a paragraph of more is the author's.
_DATE_LINE_WORDS = 12
_LINES = frozenset({"p", "div", "li", "header", "footer", "dd", "td"}) | HEADINGS


def drop_dates(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` each date schema.org marks as the page's (``itemprop="datePublished"``, ``dateModified``
    …): the short line it stands on ("Posted on Monday, 3 March 2026 at 9:15"), else the date alone; a date in a
    paragraph of the author's ("We opened on 2 May 2019, and since then …") stays."""
    for element in root.xpath("//*[@itemprop]"):
        if element.getparent() is None or str(element.get("itemprop") or "").lower() not in _DATES:
            continue
        line = next((parent for parent in element.iterancestors() if parent.tag in _LINES), None)
        short = line is not None and line is not root and len(words(line)) <= _DATE_LINE_WORDS
        if short and line is not None and line.getparent() is not None:
            line.drop_tree()
        elif line is None or line.tag != "p":
            element.drop_tree()


#: What a page's classes and ids call the furniture around an article, read word by word ("SidebarTheDeck",
#: "post-comments", "related_links"), and the ARIA roles of the same.
_FURNITURE = frozenset(
    {"sidebar", "comment", "comments", "related", "share", "sharing", "social", "newsletter", "subscribe", "signup"}
    | {"promo", "advert", "advertisement", "sponsor", "sponsored", "trending", "breadcrumb", "breadcrumbs"}
)
#: Any of those names somewhere in a class or id (a quick test before the words are read), and a word of one.
_NAMED = re.compile("|".join(sorted(_FURNITURE)), re.IGNORECASE)
_NAME_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_FURNITURE_ROLES = frozenset({"complementary", "navigation", "contentinfo", "banner"})
#: A piece of furniture is short, and holds no paragraph of an article's length: an element so named that holds
#: more is the article's container ("content has-sidebar").
FURNITURE_WORDS = 150
ARTICLE_PARAGRAPH_WORDS = 40


def drop_named_furniture(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` what its classes, ids or ARIA role name as furniture (:data:`_FURNITURE`: a sidebar, a
    call to comment, related links, share bars, a newsletter's call or sign-up box, an advertisement), when it is
    short (its words counted without its ``<style>`` and ``<script>``: a box whose form a script mounts carries
    both) and holds no paragraph of an article's length. trafilatura drops most of these by the same names; these
    it kept."""
    for element in root.xpath("//*[@class or @id or @role]"):
        if element.tag in _PAGE_PARTS or element.getparent() is None:
            continue
        names = " ".join(str(element.get(name) or "") for name in ("class", "id"))
        named = (
            bool(_NAMED.search(names) and name_words(element) & _FURNITURE)
            or str(element.get("role") or "").lower() in _FURNITURE_ROLES
        )
        short = named and shown_words(element) <= FURNITURE_WORDS and not holds_article_paragraph(element)
        if short and not is_quote_in_prose(element):  # an embedded post in a box its class calls social
            element.drop_tree()


#: A grid of cards links to so many pages at least, each link holding a picture and a title, with at most so many
#: words outside the links (its label: "Featured", "More stories").
_GRID_CARDS = 3
_GRID_LABEL_WORDS = 5
_IMAGE_FILE = re.compile(r"\.(?:jpe?g|png|gif|webp|avif)(?:[?#]|$)", re.IGNORECASE)


def drop_card_grids(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` each grid of cards of other pages (eHow's "Featured": links each holding a picture and
    a title, to :data:`_GRID_CARDS` pages or more) with its label; the outermost element made of the cards and at
    most :data:`_GRID_LABEL_WORDS` words of its own goes. Linked pictures in the author's sentences stay (their
    words are outside the links), and so does a gallery (its links lead to the pictures themselves)."""
    held: dict[lxml.html.HtmlElement, list[lxml.html.HtmlElement]] = {}
    for card in root.iter("a"):
        href = str(card.get("href") or "")
        if href and not href.startswith("#") and not _IMAGE_FILE.search(href) and _is_card_link(card):
            for parent in card.iterancestors():
                if parent.tag in _PAGE_PARTS:
                    break
                held.setdefault(parent, []).append(card)
    grids = [
        grid
        for grid, cards in held.items()
        if len({card.get("href") for card in cards}) >= _GRID_CARDS
        and len(words(grid)) - sum(len(words(card)) for card in cards) <= _GRID_LABEL_WORDS
    ]
    for grid in grids:
        if grid.getparent() is not None and not any(parent in grids for parent in grid.iterancestors()):
            grid.drop_tree()


#: A site's licence line ("This website and all documents on it are licensed under …", "Portions of this content
#: are ©1998-2022 …") is at most so many words.
_LICENCE_WORDS = 40


def drop_licence_lines(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` the line that licenses the site: the block around a link marked ``rel="license"`` (the
    microformat every Creative Commons badge carries), when short. A licence the author names in a sentence of
    their own carries no such mark."""
    for link in list(root.iter("a")):
        if "license" not in str(link.get("rel") or "").lower().split():
            continue
        line = next((parent for parent in link.iterancestors() if parent.tag in _LINES), None)
        if line is None or line.getparent() is None or len(words(line)) > _LICENCE_WORDS:
            continue
        if not holds_article_paragraph(line):
            line.drop_tree()


def name_words(element: lxml.html.HtmlElement) -> set[str]:
    """The words of ``element``'s class and id, lower case ("SidebarTheDeck" is sidebar, the, deck); an id that is
    the anchor of the element's own words names nothing (:func:`carecast.markup.naming_id`)."""
    names = f"{element.get('class') or ''} {naming_id(element)}"
    return {word.lower() for word in _NAME_WORDS.findall(names)}


#: A box of badge links (an app's store badges, a row of social icons) holds at most so many words: its call.
_BADGE_BOX_WORDS = 20


def drop_badge_boxes(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` each box of two badge links or more (a link holding a picture and no words, to a page,
    not to the picture's file: "Get it on Google Play", "Download on the App Store") with the call over them: the
    largest element around them of at most :data:`_BADGE_BOX_WORDS` words, no link but badges and no paragraph of
    prose. The author's sentence around such links (a paragraph of prose) stays."""
    for badge in [link for link in root.iter("a") if _is_badge(link)]:
        box = None
        for parent in badge.iterancestors():
            if parent.tag in _PAGE_PARTS or not _is_badge_box(parent):
                break
            box = parent
        if box is not None and box.getparent() is not None and sum(map(_is_badge, box.iter("a"))) >= 2:
            box.drop_tree()


def _is_badge(link: lxml.html.HtmlElement) -> bool:
    href = str(link.get("href") or "")
    return bool(href) and not href.startswith("#") and not _IMAGE_FILE.search(href) and _is_picture_only(link)


def _is_picture_only(link: lxml.html.HtmlElement) -> bool:
    return next(link.iter("img"), None) is not None and not words(link)


def _is_badge_box(element: lxml.html.HtmlElement) -> bool:
    prose = any(len(words(paragraph)) >= _PROSE_WORDS for paragraph in element.iter("p"))
    links = [link for link in element.iter("a") if link.get("href")]
    return not prose and len(words(element)) <= _BADGE_BOX_WORDS and all(map(_is_badge, links))


#: Small print, as old and new pages set it.
_SMALL_PRINT = (
    "ancestor-or-self::small | ancestor-or-self::font[starts-with(@size, '-')]"
    " | .//small | .//font[starts-with(@size, '-')]"
)
#: A platform's credit ("Powered by Tumblr", "Theme by …") is at most so many words.
_CREDIT_WORDS = 6


def drop_platform_credits(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` each platform's credit: a link in small print to a site's home page (no path, no
    query), of at most :data:`_CREDIT_WORDS` words, with the small print around it. A link to a home page in the
    author's ordinary print ("Book your first visit") and a source in small print linking to a page stay."""
    if not root.xpath("boolean(//small | //font[starts-with(@size, '-')])"):
        return  # no small print on the page
    for link in list(root.iter("a")):
        address = urlsplit(str(link.get("href") or ""))
        if not address.netloc or address.path not in ("", "/") or address.query or link.getparent() is None:
            continue
        small = link.xpath(_SMALL_PRINT)
        if small and len(words(link)) <= _CREDIT_WORDS:
            outer = [element for element in small if element in set(link.iterancestors())]
            credit = outer[-1] if outer and len(words(outer[-1])) <= _CREDIT_WORDS else link
            credit.drop_tree()


_NUMBER = re.compile(r"\d")


def drop_permalink_lines(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` the post's own permalink line: a short line (a date's, :data:`_DATE_LINE_WORDS` words
    at most, no heading) holding a link whose text has a number ("Oct 18, 2019 · 8 min read") to the page's own
    address (its ``rel="canonical"`` link or ``og:url``). A headline linked to the post and the author's sentence
    linking to it stay."""
    own = root.xpath("//link[@rel='canonical']/@href | //meta[@property='og:url']/@content")
    paths = {urlsplit(str(address)).path.rstrip("/") for address in own} - {""}
    for link in list(root.iter("a")) if paths else []:
        href = str(link.get("href") or "")
        if not any(path in href for path in paths) or urlsplit(href).path.rstrip("/") not in paths:
            continue
        if not _NUMBER.search(flat_text(link)):
            continue
        line = next((parent for parent in link.iterancestors() if parent.tag in _LINES), None)
        if line is None or line.tag in HEADINGS or line.getparent() is None:
            continue
        if len(words(line)) <= _DATE_LINE_WORDS:
            line.drop_tree()


#: What classes and ids call a page's comment section (Disqus mounts its own).
_COMMENTS = frozenset({"comment", "comments", "disqus", "respond"})
#: Any of those names somewhere in a class or id (a quick test before the words are read).
_COMMENTS_NAMED = re.compile("comment|disqus|respond", re.IGNORECASE)
#: Small print, set by a style: a font of at most so many pixels, or a smaller size named.
_SMALL_FONT = re.compile(r"font-size\s*:\s*(?:(\d+(?:\.\d+)?)px|x-small|xx-small|smaller)", re.IGNORECASE)
_SMALL_PIXELS = 11
#: A note over the comments has at most so many words.
_NOTE_WORDS = 40


def drop_notes_over_comments(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` the note in small print set right over the page's comment section (its rules:
    "Comments that … will not be approved by the moderator", in any language): the last block before an element
    its class or id names the comments, when a style or ``<small>`` sets it small and it is short. The post's own
    last paragraph, in its ordinary print, stays."""
    sections = [
        element
        for element in root.xpath("//*[@class or @id]")
        if _COMMENTS_NAMED.search(f"{element.get('class') or ''} {element.get('id') or ''}")
        and name_words(element) & _COMMENTS
    ]
    outer = set(sections)
    for section in sections:
        if section.getparent() is None or any(parent in outer for parent in section.iterancestors()):
            continue  # a comment inside the section
        before = section.getprevious()
        while before is not None and not (isinstance(before.tag, str) and words(before)):
            before = before.getprevious()
        blocks = [] if before is None else reversed(list(before.iter("p", "div", "small")))
        note = next((block for block in blocks if words(block)), None)  # the last one with words
        if note is not None and len(words(note)) <= _NOTE_WORDS and _is_small_print(note):
            note.drop_tree()


def drop_other_entries(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` each entry of another post set inside the page's article (a theme's "more posts" loop:
    its picture, title and excerpt): an ``<article>`` inside another whose permalink (the hAtom ``rel="bookmark"``
    link) leads to another page than the page's own address (its ``rel="canonical"`` link or ``og:url``), holding
    no ``<h1>``, short (:data:`FURNITURE_WORDS` words at most) and less than half the words of the article around
    it. An article inside the post without such a link (a card the author embeds, a quote) stays, and so does the
    post itself under its permalink written otherwise."""
    own = root.xpath("//link[@rel='canonical']/@href | //meta[@property='og:url']/@content")
    paths = {urlsplit(str(address)).path.rstrip("/") for address in own} - {""}
    for entry in list(root.xpath("//article//article")) if paths else []:
        links = entry.xpath(".//a[contains(concat(' ', normalize-space(@rel), ' '), ' bookmark ')]/@href")
        if entry.getparent() is None or not links or {urlsplit(str(h)).path.rstrip("/") for h in links} & paths:
            continue
        outer = next(entry.iterancestors("article"))
        # The post itself, its permalink written otherwise than its canonical address, holds the page's headline
        # or the most of the page's article; another post's entry is a short part of it (a teaser's excerpt).
        size = len(words(entry))
        if next(entry.iter("h1"), None) is None and size <= FURNITURE_WORDS and 2 * size < len(words(outer)):
            entry.drop_tree()


#: A line of a post's tags has at most so many words outside its links (the commas between them, a label).
_TAG_LINE_WORDS = 3


def drop_tag_lines(root: lxml.html.HtmlElement) -> None:
    """Remove from ``root`` each line of the post's tags or categories: a line whose links all carry the
    microformat ``rel="tag"`` (WordPress's ``rel="category tag"``), with at most :data:`_TAG_LINE_WORDS` words of
    its own. A tag linked in the author's sentence stays."""
    for link in root.xpath("//a[contains(concat(' ', normalize-space(@rel), ' '), ' tag ')]"):
        line = next((parent for parent in link.iterancestors() if parent.tag in _LINES), None)
        if line is None or line.getparent() is None or line.tag in HEADINGS:
            continue
        links = [a for a in line.iter("a") if a.get("href")]
        tagged = all("tag" in str(a.get("rel") or "").lower().split() for a in links)
        if tagged and len(words(line)) - sum(len(words(a)) for a in links) <= _TAG_LINE_WORDS:
            line.drop_tree()


def _is_small_print(element: lxml.html.HtmlElement) -> bool:
    if element.tag == "small" or (element.get("size") or "").startswith("-"):
        return True
    match = _SMALL_FONT.search(str(element.get("style") or ""))
    if match is None:
        return False
    return match.group(1) is None or float(match.group(1)) <= _SMALL_PIXELS


def _is_card_link(link: lxml.html.HtmlElement) -> bool:
    return next(link.iter("img"), None) is not None and len(words(link)) >= 2


def holds_article_paragraph(element: lxml.html.HtmlElement) -> bool:
    """Whether ``element`` holds a paragraph of an article's length (:data:`ARTICLE_PARAGRAPH_WORDS` words)."""
    return any(len(words(paragraph)) >= ARTICLE_PARAGRAPH_WORDS for paragraph in element.iter("p"))


#: What a class or id calls a quote set apart from the article's paragraphs (a pull quote, a quotation).
_QUOTE_NAMES = frozenset({"quote", "quotation", "pullquote", "blockquote"})
#: A quote of the article holds at least so many words outside links; and at most half its words in links (an
#: embedded post links its author, its date and its picture).
_QUOTE_WORDS = 5
#: A quote holds at least this share of its box's words (what the box adds is an embed's "Follow", a credit).
_QUOTE_SHARE = 0.75
#: A paragraph of the article's prose around a quote holds at least so many words outside links.
_QUOTE_PARAGRAPH_WORDS = 10


def is_quote_in_prose(element: lxml.html.HtmlElement) -> bool:
    """Whether ``element`` is a quote of the article: named a quote (:data:`_QUOTE_NAMES`) or most of its words in
    a ``<blockquote>`` or ``<q>`` (an embedded post, a pull quote), words of its own outside links, and set between
    the article's paragraphs (the largest element around it holding no more words has a paragraph of prose among
    its siblings before it and one after it). A box of furniture holds no quote, or stands apart from the
    article's paragraphs (a sidebar's, a footer's)."""
    named = bool(name_words(element) & _QUOTE_NAMES)
    if not named and element.find(".//blockquote") is None and element.find(".//q") is None:
        return False
    found, unlinked = shown_words(element), unlinked_words(element)
    if unlinked < _QUOTE_WORDS or unlinked < found / 2:
        return False
    if not named and max(shown_words(quote) for quote in element.iter("blockquote", "q")) < _QUOTE_SHARE * found:
        return False
    block = element
    while (parent := block.getparent()) is not None and parent.tag not in _PAGE_PARTS and shown_words(parent) == found:
        block = parent
    return _holds_prose(block.itersiblings(preceding=True)) and _holds_prose(block.itersiblings())


def _holds_prose(siblings: Iterator[lxml.html.HtmlElement]) -> bool:
    return any(sibling.tag == "p" and unlinked_words(sibling) >= _QUOTE_PARAGRAPH_WORDS for sibling in siblings)


def _is_box(element: lxml.html.HtmlElement) -> bool:
    prose = any(len(words(paragraph)) >= _PROSE_WORDS for paragraph in element.iter("p"))
    found = words(element)
    return len(found) <= _FORM_BOX_WORDS and len("".join(found)) <= _FORM_BOX_CHARACTERS and not prose


def _is_card(element: lxml.html.HtmlElement) -> bool:
    links = [link for link in element.iter("a") if link.get("href")]
    linked = sum(len("".join(link.text_content().split())) for link in links)
    text = len("".join(element.text_content().split()))
    return len(links) >= _CARD_LINKS and next(element.iter("img"), None) is not None and linked >= 0.9 * text
