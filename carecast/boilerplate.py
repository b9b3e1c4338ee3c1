"""What platforms and page templates put around a post, told by its shape and trimmed from the post's document.

A feed's post, and the article trafilatura finds in a whole page, come with blocks that are not the author's:
calls to subscribe, share, comment or read related posts, wherever they stand; at the end, lists of related posts,
share bars, platform footers, teasers of other posts (linked titles with their pictures and dates), the site's
contact box or the author's signature, a lead-in to a widget that is gone; at the start, the site's menu. They are
told as jusText and Readability tell them, by structure: link density, short lines that are no sentences, where
in the post they stand; a short list of the calls platforms append, in the practices' languages, adds the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from carecast.document import Block, Document
from carecast.postlines import without_closing_lines, without_date_lines

#: Calls platforms append to a post, in the languages practices write (matched on a short block's whole text).
_CALLS = re.compile(
    r"^(?:"
    r"(?:thanks|thank you) for reading\b.*|subscribe(?: now| for free| to \w+.*)?|sign up\b.*|share(?: this(?: post)?)?"
    r"|share on \w+|leave a (?:comment|reply)|\d* ?comments?|related(?: posts| articles| reading)?|you (?:may|might) "
    r"also (?:like|enjoy)\b.*|read next|more from \w+.*|follow us\b.*|like this:?|tweet|pin it|email|print"
    r"|suscr[ií]bete\b.*|compartir|comp[aá]rtelo|comparte(?: esto)?|deja(?:r)? un comentario|art[ií]culos relacionados"
    r"|entradas relacionadas|gracias por leer\b.*|s'abonner|partager|laisser un commentaire|articles similaires"
    r"|abonnieren|teilen|kommentar hinterlassen|[äa]hnliche beitr[äa]ge|assine|compartilhe|deixe um coment[aá]rio"
    r"|(?:like this (?:story|article|post)\?\s*)?share (?:it|this(?: story| article| post)?) with (?:a|your) friends?"
    r"|(?:reading time|read time|tiempo de lectura|tempo de leitura|temps de lecture|lesezeit|lesedauer):?\s*\d+\s*\w+"
    r"|\d+\s*min(?:ute)?s? read"
    r")[\s.:!\u2026\u2192>»]*$",
    re.IGNORECASE,
)
#: The longest a call is ("Thanks for reading Moving Well Notes! Subscribe for free to receive new posts and
#: support my work."): a longer block is the author's own words.
_CALL_WORDS = 20
#: A block this much made of links (by characters) and this short is navigation, not prose (jusText's rule).
_LINK_DENSITY = 0.5
_SHORT_WORDS = 25
#: A link to another page of the site reading as its title (this many words at least, no sentence's end), with at
#: most a label beside it (:data:`_LABEL_WORDS` words a link) and the whole no sentence either, is a teaser of
#: another post wherever it stands ("Read more: Alibaba poised to launch …", "SEE MORE: …", "… jibe [INSIGHT]");
#: a shorter link is the post's own call to action ("Book a visit"), a sentence the author's ("Pro tip: Get more
#: meal ideas here!").
_TITLE_WORDS = 5
_ENDS = (".", "!", "?")
#: A run of teaser blocks at the end (linked titles, their pictures and dates) links to this many pages at least:
#: fewer are the post's own calls to action ("Book a visit", "Read our FAQ").
_TEASER_LINKS = 3
#: A list of the site's stories at the end links more than this share of each item (the rest a lead-in): an
#: author's prose links less (furniture's measure of prose).
_SITE_LIST_LINKED = 0.25
#: A label over a list of teasers ("Das könnte Sie auch interessieren") has at most so many words.
_LIST_LABEL_WORDS = 6
#: A teaser card's standfirst (its byline and lead) is at most so many words; the post's own section is longer.
_STANDFIRST_WORDS = 50
#: At most so many words make a label (four make a sentence: "Top photo by Joan Bardeletti" is the
#: article's); what a sentence (or a quote, or a list's lead-in) ends with.
_LABEL_WORDS = 3
#: How an author's short last line greets or signs off, in the languages practices write ("Stay well", "See you
#: soon", "Take care", "Hasta pronto"): a closing, though it ends in no full stop, never a page's label.
_CLOSING = re.compile(
    r"^(?:stay|see you|take care|talk soon|be well|get well|happy|merry|best|warm(?:ly|est)?|cheers|thanks|thank you"
    r"|until|love|enjoy|hasta|nos vemos|cu[ií]date|cu[ií]dense|saludos|un abrazo|abrazos|feliz|felices|gracias"
    r"|[àa] bient[ôo]t|bonnes?|prenez soin|bis bald|alles gute|frohe)\b",
    re.IGNORECASE,
)
#: A closing line has at most so many words ("Happy holidays from all of us"); under it, at most so many labels are
#: the name and role it signs with.
_CLOSING_WORDS = 6
_SIGNED_LINES = 2
_SENTENCE_ENDS = (
    ".",
    "!",
    "?",
    ":",
    "\u2026",
    '"',
    "\u201c",
    "\u201d",
    ")",
    "\u00bb",
    "\u00ab",
    "\u3002",
    "\uff01",
    "\uff1f",
)
#: A line of a contact box or a signature ("Telefon +49 (0)40 / 49 07 11 06", "Leiterin: Maryam Schmidt") has at
#: most so many words; a lead-in ("… Dazu musst Du Dich auf fyyd.de einloggen:") at most so many.
_CARD_LINE_WORDS = 8
#: … and so many characters (a line of Japanese or Chinese is one "word" however long).
_CARD_LINE_CHARACTERS = 60
_LEAD_IN_WORDS = 40
#: A paragraph of at least so many words is the post's prose: the menu, if any, stood before it.
_PROSE_WORDS = 10


def trim_boilerplate(
    document: Document, page_url: str | None = None, dates: Callable[[], frozenset[str]] = frozenset
) -> Document:
    """``document`` without what platforms and templates add around a post: calls to subscribe, share, comment or
    read related posts (:data:`_CALLS`) wherever they stand, and teasers of the site's other posts
    (:func:`_is_teaser_line`; the site is ``page_url``'s) anywhere but last; the menus before the post's first
    paragraph of prose, and its date and byline lines (:func:`carecast.postlines.without_date_lines`); and at the
    end the run of navigation (link-dense short blocks, teasers of other posts), then whatever a post never ends on:
    a heading, a citation, a label, a contact box or signature, a lead-in to nothing, the picture of a teaser (but
    the name and role signed under a closing line stay); last, the calls to follow or subscribe closing the post,
    its credit line and its date lines of one of the days ``dates`` gives
    (:func:`carecast.postlines.without_closing_lines`).
    Raises nothing."""
    blocks = _without_leading_navigation([block for block in document.blocks if not _is_call(block)])
    blocks = without_date_lines(blocks)
    site = _site(page_url)
    end = _before_navigation(blocks, len(blocks), site)
    if end < len(blocks) and end > 0 and blocks[end - 1].kind == "heading":
        end -= 1  # "Related posts" over the list it introduced
    # A heading with nothing under it (the next section's, cut by the feed) or a reference list's citation is
    # never where a post ends for a reader: its last words are the author's.
    while end > 1 and (_is_tail(blocks[end - 1]) or _is_teaser_picture(blocks, end)):
        if _under_closing(blocks, end):
            break
        end -= 1
    return Document(tuple(without_closing_lines(_without_teasers(blocks[:end] if end > 0 else blocks, site), dates)))


def _without_teasers(blocks: list[Block], site: str) -> list[Block]:
    """``blocks`` without the teasers of ``site``'s other posts inside the post: lines (:func:`_is_teaser_line`)
    but the middle of a sentence, and lists of them with the label over them ("Notas relacionadas", "Das könnte
    Sie auch interessieren"). The last block, a link, is the post's own call to action ("Book your first visit")."""
    dropped = set()
    for index, block in enumerate(blocks[:-1]):
        if block.kind == "list" and all(len(item) == 1 and _is_teaser_line(item[0], site) for item in block.items):
            dropped |= {index, index - 1} if index > 0 and _is_list_label(blocks[index - 1]) else {index}
        elif _is_teaser_line(block, site) and not _inside_sentence(blocks, index):
            dropped.add(index)
    return [block for index, block in enumerate(blocks) if index not in dropped]


def _is_list_label(block: Block) -> bool:
    """A heading or a line of at most :data:`_LIST_LABEL_WORDS` words that is no sentence: what names a list."""
    words = block.text.split()
    return (
        block.kind in {"heading", "paragraph"}
        and 0 < len(words) <= _LIST_LABEL_WORDS
        and not block.text.endswith(_ENDS)
    )


def _inside_sentence(blocks: list[Block], index: int) -> bool:
    """Whether block ``index`` is the middle of a sentence a page split around its link ("… predicted that Apple
    will" / link / ", including all MacBook Pro models."): the paragraph before it does not end as a sentence and
    the one after starts in lower case or with punctuation (a label over a teaser is followed by another title)."""
    before, after = blocks[index - 1] if index > 0 else None, blocks[index + 1]
    start = after.text.lstrip()[:1] if after.kind == "paragraph" else ""
    return (
        before is not None
        and before.kind == "paragraph"
        and not before.text.rstrip().endswith(_SENTENCE_ENDS)
        and bool(start)
        and (start.islower() or start in ",;:.)")
    )


def _without_leading_navigation(blocks: list[Block]) -> list[Block]:
    """``blocks`` without the lists of short links (a site's menu) before the first paragraph of prose; all of them
    when there is no such paragraph (nothing then tells the menu from the post). A paragraph of links there stays:
    a breadcrumb ("Home > Stories > …"), which Readability counts as the article's."""
    first = next((index for index, block in enumerate(blocks) if _is_prose(block)), None)
    if first is None:
        return blocks
    return [
        block
        for index, block in enumerate(blocks)
        if index >= first or block.kind != "list" or not _is_navigation(block)
    ]


def _is_prose(block: Block) -> bool:
    return block.kind == "paragraph" and len(block.text.split()) >= _PROSE_WORDS and not _is_navigation(block)


def _before_navigation(blocks: list[Block], end: int, site: str) -> int:
    """Where the run of navigation ending at ``end`` starts: link-dense short blocks (:func:`_is_navigation`), then
    a run of teaser blocks (linked titles, pictures, dates, cards of the site's other posts, lists of their titles
    and standfirsts) when it links to :data:`_TEASER_LINKS` pages."""
    while end > 0 and (_is_navigation(blocks[end - 1]) or _is_site_list(blocks[end - 1], site)):
        end -= 1
    start, links = end, set[str | None]()
    while start > 0:
        if (card := _teaser_card(blocks, start, site)) < start:
            start, links = card, links | {blocks[card].url}
        elif _is_teaser_part(blocks[start - 1]):
            start -= 1
            links |= {span.href for span in blocks[start].spans if span.href}
        elif _is_teaser_list(blocks[start - 1], site):
            start -= 1
            links |= {span.href for item in blocks[start].items for span in item[0].spans if span.href}
        else:
            break
    return start if len(links) >= _TEASER_LINKS else end


def _is_site_list(block: Block, site: str) -> bool:
    """A list of :data:`_TEASER_LINKS` short items or more (:data:`_SHORT_WORDS` words an item), each linking to
    other pages of ``site`` and nowhere else by more than :data:`_SITE_LIST_LINKED` of its text: the site's stories
    under the post ("YouTubers must unionize, *no matter what Google says*"), which their lead-ins keep below the
    density of a menu. A list of sources links elsewhere; the author's steps link less."""
    if block.kind != "list" or not site or len(block.items) < _TEASER_LINKS:
        return False
    items = [[span for child in item for span in child.spans] for item in block.items]
    if sum(len("".join(span.text for span in spans).split()) for spans in items) > _SHORT_WORDS * len(items):
        return False  # items of prose, as a menu's are not (:func:`_is_navigation`)
    for spans in items:
        links = [span for span in spans if span.href]
        text = "".join(span.text for span in spans)
        if not links:
            return False
        if any(_site(span.href) != site or "#" in str(span.href) for span in links):
            return False
        if sum(len(span.text) for span in links) <= _SITE_LIST_LINKED * len(text):
            return False
    return True


def _teaser_card(blocks: list[Block], end: int, site: str) -> int:
    """Where the card of another post of ``site`` ending at ``end`` starts (``end`` when there is none): a heading
    that is a link to it, then its picture without caption, its standfirst (a paragraph linking nowhere, at most
    :data:`_STANDFIRST_WORDS` words), or both. A heading linking to another site is a source the post cites."""
    start = next((index for index in range(end - 1, max(end - 4, -1), -1) if blocks[index].kind == "heading"), end)
    if start == end or not site or _site(blocks[start].url) != site:
        return end
    body = blocks[start + 1 : end]
    shapes = [block.kind for block in body]
    fits = all(
        not block.caption
        if block.kind == "figure"
        else len(block.text.split()) <= _STANDFIRST_WORDS and not any(span.href for span in block.spans)
        for block in body
    )
    return start if fits and shapes in ([], ["figure"], ["paragraph"], ["figure", "paragraph"]) else end


def _is_teaser_list(block: Block, site: str) -> bool:
    """A list of teasers of ``site``'s other posts: each item its linked title, then at most its standfirst (a
    paragraph or heading linking nowhere; :data:`_STANDFIRST_WORDS` words in all)."""
    return (
        block.kind == "list" and bool(site and block.items) and all(_is_teaser_item(item, site) for item in block.items)
    )


def _is_teaser_item(item: tuple[Block, ...], site: str) -> bool:
    title, rest = item[0], item[1:]
    spans = [span for span in title.spans if span.text.strip()]
    return (
        title.kind == "paragraph"
        and len(spans) == 1
        and _site(spans[0].href) == site
        and all(block.kind in {"paragraph", "heading"} and not any(span.href for span in block.spans) for block in rest)
        and sum(len(block.text.split()) for block in item) <= _STANDFIRST_WORDS
    )


def _is_teaser_part(block: Block) -> bool:
    """A block of a teaser of another post: its linked title (a short paragraph mostly link), its picture without
    caption, its date or section label."""
    if block.kind == "figure":
        return not block.caption
    if block.kind != "paragraph" or len(block.text.split()) > _SHORT_WORDS:
        return False
    linked = sum(len(span.text) for span in block.spans if span.href)
    return linked >= _LINK_DENSITY * len(block.text) or _is_label(block)


def _is_tail(block: Block) -> bool:
    """A block a post never ends on: the next section's heading, a citation, a label, a contact box or a
    signature, a lead-in to what is no longer there, the site's legal line."""
    return (
        block.kind == "heading"
        or _is_citation(block)
        or _is_label(block)
        or _is_card(block)
        or _is_lead_in(block)
        or _is_legal(block)
    )


#: A site's legal line opens with its copyright mark, in every language: "© 2026 …", "Copyright © 2015, …",
#: "(c) 2025 …", "Copyright 2024 …", "copyright Inexhibit 2019 - ISSN …" (the owner's name, at most four capitalised
#: words, before the year); a sentence that cites a mark in passing does not.
_LEGAL = re.compile(
    r"^(?:copyright\s*)?(?:©|\(c\)\s*(?:19|20)\d\d)|^copyright\s+(?-i:[A-Z][^\s.!?]*\s+){0,4}(?:19|20)\d\d\b",
    re.IGNORECASE,
)
_LEGAL_WORDS = 40


def _is_legal(block: Block) -> bool:
    return block.kind == "paragraph" and len(block.text.split()) <= _LEGAL_WORDS and bool(_LEGAL.match(block.text))


def _is_teaser_picture(blocks: list[Block], end: int) -> bool:
    """The last block, a picture without caption, under a block a post never ends on: a contact box and its
    portrait, a date and its teaser's picture, a teaser's title (a heading under its label: "Birthday", "Nicklaus,
    a man of big words") and its picture. A heading over a picture alone is the post's own section; two pictures
    or more are its gallery."""
    last = blocks[end - 1]
    if last.kind != "figure" or last.caption or end < 2:
        return False
    above = blocks[end - 2]
    if above.kind == "heading":
        return end >= 3 and _is_label(blocks[end - 3])
    return _is_tail(above)


#: A journal reference: "2017;47(7):A1-A83", "2010;(6):CD007612", a DOI or a PubMed id.
_CITATION = re.compile(r"\b(?:19|20)\d\d;\s*\d*\s*(?:\(\w+\))?:\s*\w*\d|\bdoi:\s*10\.|\bPMID:?\s*\d", re.IGNORECASE)


def _is_citation(block: Block) -> bool:
    return block.kind == "paragraph" and len(block.text.split()) <= 60 and bool(_CITATION.search(block.text))


def _is_label(block: Block) -> bool:
    """A few words that are no sentence and link nowhere: a teaser's date or title, an image credit, a section's
    name ("Archive"); a post's own last words end as a sentence does, or greet ("Stay well")."""
    words = block.text.split() if block.kind == "paragraph" else []
    return (
        0 < len(words) <= _LABEL_WORDS
        and not block.text.rstrip().endswith(_SENTENCE_ENDS)
        and not any(span.href for span in block.spans)
        and not _CLOSING.match(block.text)
    )


def _under_closing(blocks: list[Block], end: int) -> bool:
    """Whether the labels ending at ``end`` (at most :data:`_SIGNED_LINES`) sign the post: they stand under a
    closing line ("Stay well,", "Warmly,"), so they are the author's name and role, not a page's labels."""
    start = end
    while start > 0 and end - start < _SIGNED_LINES and _is_label(blocks[start - 1]):
        start -= 1
    closing = blocks[start - 1] if 0 < start < end else None
    return (
        closing is not None
        and closing.kind == "paragraph"
        and len(closing.text.split()) <= _CLOSING_WORDS
        and bool(_CLOSING.match(closing.text))
        and not closing.text.rstrip().endswith(".")  # "Thanks for coming in." is a sentence, no sign-off
    )


def _is_card(block: Block) -> bool:
    """A contact box or a signature: a paragraph of lines of its own, each a few words that are no sentence (a
    name, a role, "Telefon: …", an e-mail address); three lines or more, or two with a way to reach someone (two
    short lines alone may be a place and how to get there, the post's own)."""
    if block.kind != "paragraph":
        return False
    lines = [line.strip() for line in "".join(span.text for span in block.spans).split("\n") if line.strip()]
    labels = all(
        len(line.split()) <= _CARD_LINE_WORDS
        and len(line) <= _CARD_LINE_CHARACTERS
        and not line.endswith(_STATEMENT_ENDS)
        for line in lines
    )
    reach = any(str(span.href).startswith(("mailto:", "tel:")) for span in block.spans) or _CONTACT.search(block.text)
    return labels and (len(lines) >= 3 or (len(lines) == 2 and bool(reach)))


#: An e-mail address or a phone number (six digits or more, spaced or not).
_CONTACT = re.compile(r"\w@\w|\d[\d\s/().+-]{4,}\d")
_STATEMENT_ENDS = (".", "!", "?", "\u2026", "\u3002", "\uff01", "\uff1f")


def _is_lead_in(block: Block) -> bool:
    """A paragraph or heading that announces what follows ("Contact:", "… log in here:"): at the end of a post,
    what it announced (a button, a form, a widget) is gone."""
    return (
        block.kind in {"paragraph", "heading"}
        and 0 < len(block.text.split()) <= _LEAD_IN_WORDS
        and (block.text.rstrip().endswith(":"))
    )


def _is_call(block: Block) -> bool:
    if block.kind in {"paragraph", "heading", "button"}:
        text = block.caption if block.kind == "button" else block.text
        return bool(text) and len(text.split()) <= _CALL_WORDS and bool(_CALLS.match(text))
    if block.kind == "list":
        texts = [" ".join(child.text for child in item) for item in block.items]
        return all(_CALLS.match(text) for text in texts if text) and any(texts)
    return False


def _is_teaser_line(block: Block, site: str) -> bool:
    """A paragraph made of links to other posts of ``site`` under their titles, with at most a label ("Read more:",
    "[VIDEO]"); a link elsewhere is a source the post cites or points to ("CLICK FOR FULL STATE SWIM RESULTS"), a
    link to a place in a page (``#…``) an entry of the post's table of contents."""
    links = [span for span in block.spans if span.href]
    unlinked = sum(len(span.text.split()) for span in block.spans if not span.href)
    return (
        block.kind == "paragraph"
        and bool(site and links)
        and unlinked <= _LABEL_WORDS * len(links)
        and not block.text.strip().endswith(_ENDS)
        and all(_site(span.href) == site and "#" not in str(span.href) for span in links)
        and all(
            len(span.text.split()) >= _TITLE_WORDS and not span.text.strip().endswith((".", "!", "?")) for span in links
        )
    )


def _site(url: str | None) -> str:
    """The host of ``url`` without ``www.`` (empty for none)."""
    host = urlsplit(url or "").hostname or ""
    return host.removeprefix("www.")


def _is_navigation(block: Block) -> bool:
    """Short, mostly links, and more than one: a list of related posts, a share bar, a platform footer."""
    if block.kind == "list":
        spans = [span for item in block.items for child in item for span in child.spans]
    elif block.kind == "paragraph":
        spans = list(block.spans)
    else:
        return False
    text = "".join(span.text for span in spans)
    linked = sum(len(span.text) for span in spans if span.href)
    links = len({span.href for span in spans if span.href})
    per_item = len(text.split()) / max(len(block.items), 1)
    # One link alone is the post's own call to action ("Learn about our running clinic"); several are a menu.
    return links >= 2 and linked >= _LINK_DENSITY * len(text) and per_item <= _SHORT_WORDS
