"""Lines a site or its editor sets in a post's own flow, told by their shape and taken out of it: the notes set in
italics under the post's last paragraph (the author's bio, a call to follow the site or to subscribe, a plea for
support, linking to other sites) and a banner among them (a picture advertising another site); the post's date and
byline line above its first paragraphs ("5:45 AM PST 11/19/2019 by …", "Published 18 November 2019", "기사입력 :[
2018-09-28 17:32 ]"); the picture's credit closing its caption ("… Bild: TebNad/Shutterstock.com"); the lines
closing the post's last paragraphs: calls to follow or subscribe linking to a social network or a sign-up page, the
credit of who else reported ("Keith Bradsher contributed reporting from Hong Kong."), the page's time stamp. They stand
where the author's words do, so neither the page's template rules (:mod:`carecast.furniture`) nor the end-of-post
rules (:mod:`carecast.boilerplate`) tell them; the author's own italic paragraph linking once (the practice's call
to book), a date inside a sentence, an event's date and a caption's own sentences stay.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from html import escape
from urllib.parse import urlsplit

import lxml.html

from carecast.document import Block, Span
from carecast.markup import is_whole_page, words

#: An editor's note has at most so many words; a paragraph after it of so many words is the post's own prose.
_NOTE_WORDS = 80
_PROSE_WORDS = 20
#: A note links to so many other sites at least (the author's book and their social accounts, a newsletter and a
#: donation page): one link is the post's own call to action ("Book your visit").
_NOTE_SITES = 2
_ITALIC = frozenset({"em", "i"})
_WORDLIKE = re.compile(r"\w")


def drop_end_notes(root: lxml.html.HtmlElement, page_url: str | None) -> None:
    """Remove from ``root`` the editor's notes under a post: of the run of paragraphs closing their container, each
    set in italics (:func:`_is_italic`) and of at most :data:`_NOTE_WORDS` words, those that link, when together
    they link to :data:`_NOTE_SITES` sites or more other than ``page_url``'s; and the banners among the pictures
    of that run (:func:`_is_banner`). Raises nothing."""
    own = _host(page_url)
    parents = {paragraph.getparent() for paragraph in root.iter("p")}
    for parent in [element for element in root.iter() if element in parents]:  # in the page's order
        if parent is not root and parent.getparent() is None:
            continue  # dropped with a note
        run = _closing_run(parent)
        notes = [element for element in run if element.tag == "p"]
        sites = {_host(link.get("href")) for note in notes for link in note.iter("a")} - {"", own}
        for element in run:
            if element.tag == "figure" and _is_banner(element, own):
                element.drop_tree()
            elif element.tag == "p" and len(sites) >= _NOTE_SITES and any(a.get("href") for a in element.iter("a")):
                element.drop_tree()  # one linking nowhere is the author's ("Editor's note: updated at 5:45 p.m.")


def _closing_run(parent: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    """The italic paragraphs and the pictures that close ``parent``: after its last paragraph of another print,
    with nothing after them but blocks without prose (a share bar, an empty link)."""
    run = []
    for child in reversed(parent):
        if not isinstance(child.tag, str):
            continue
        if child.tag == "figure":
            run.append(child)
        elif child.tag == "p" and words(child):
            if len(words(child)) > _NOTE_WORDS or not _is_italic(child):
                break
            run.append(child)
        elif any(len(words(inner)) >= _PROSE_WORDS for inner in child.iter("p")):
            break
    return run


def _is_banner(figure: lxml.html.HtmlElement, own: str) -> bool:
    """A picture advertising another site ("Need more space? Subscribe to our sister title …"): the picture and
    its caption's words link to one address, on another site than ``own``. A picture linking to its own file
    or a source named in a caption of the author's words stays."""
    caption = figure.find(".//figcaption")
    links = {str(link.get("href") or "") for link in figure.iter("a")} - {""}
    if caption is None or len(links) != 1 or _host(next(iter(links))) in {"", own}:
        return False
    linked = sum(len("".join(words(link))) for link in caption.iter("a"))
    return next(figure.iter("img"), None) is not None and linked * 2 >= len("".join(words(caption)))


def _is_italic(paragraph: lxml.html.HtmlElement) -> bool:
    """Whether ``paragraph``'s words are in italics (``<em>``, ``<i>``) but those of its links, which a page may
    set in its links' own style, and punctuation."""
    italic = False
    for text in paragraph.xpath(".//text()"):
        if not _WORDLIKE.search(str(text)):
            continue
        holder = text.getparent()
        if text.is_tail:
            holder = holder.getparent()
        chain = []
        for element in [holder, *holder.iterancestors()] if holder is not None else []:
            if element is paragraph:
                break
            chain.append(element.tag)
        if _ITALIC & set(chain):
            italic = True
        elif "a" not in chain:
            return False
    return italic


def _host(url: str | None) -> str:
    return (urlsplit(url or "").hostname or "").removeprefix("www.")


#: A date as pages write it, in any language: numbers ("2018-09-28", "11/19/2019", "2016.12.01"), a day, a month's
#: name and a year in either order ("18 November 2019", "August 14, 2025", "22 de outubro de 2010", "14. Januar
#: 2022"), Chinese, Japanese or Korean ("2016年12月1日", "2018년 9월 28일"); and a time of day beside it ("5:45 AM",
#: "20:13"), which alone ("Open 9:00 to 17:00") is no date.
_DATE = re.compile(
    r"\b\d{4}[-./]\d{1,2}[-./]\d{1,2}\b|\b\d{1,2}[-./]\d{1,2}[-./](?:\d{4}|\d{2})\b"
    r"|\b\d{1,2}(?:st|nd|rd|th|\.)?\s+(?:de\s+)?[^\W\d_]{3,}\.?,?\s+(?:de\s+)?(?:19|20)\d\d\b"
    r"|\b[^\W\d_]{3,}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+(?:19|20)\d\d\b"
    r"|\d{4}\s*[年년]\s*\d{1,2}\s*[月월]\s*\d{1,2}\s*[日일]?",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?m\b\.?)?", re.IGNORECASE)
#: A date line has at most so many words, and so many beside its date and time ("Published", "by Patrick
#: Shanley", "AM PST"), or is made of so many fields at least, each of a few words, set apart by a bar, a dash or
#: a dot ("05/10/2018 - Publicado por: Clarissa Borba - Categoria: Saúde - Tags: …"); a line of more is the
#: author's.
_DATE_LINE_WORDS = 16
_BESIDE_DATE_WORDS = 6
_FIELDS = 3
_FIELD_WORDS = 5
_FIELD_BREAKS = re.compile(r"\s[|\u2013\u2014\u00b7\u2022-]\s")
#: A paragraph of prose: so many words at least, or characters (a line of Japanese is one "word"). A date line
#: stands above the post's second one.
_HEAD_PROSE_WORDS = 10
_HEAD_PROSE_CHARACTERS = 60
_SENTENCE_ENDS = (".", "!", "?", "\u3002", "\uff01", "\uff1f")


def without_date_lines(blocks: list[Block]) -> list[Block]:
    """``blocks`` without the post's date and byline lines above its second paragraph of prose (the first may be
    its standfirst; above the first in a post of one): paragraphs, headings or lists of them, of a date and a few
    words (:func:`_is_date_line`). Further down a date line is the author's (an event's day and hours). Raises
    nothing."""
    prose = [index for index, block in enumerate(blocks) if _is_prose(block)][:2]
    head = prose[-1] if prose else 0
    return [block for index, block in enumerate(blocks) if index >= head or not _is_date_block(block)]


def _is_date_block(block: Block) -> bool:
    if block.kind in {"paragraph", "heading"}:
        return _is_date_line(block.text)
    if block.kind == "list":
        texts = [" ".join(child.text for child in item).strip() for item in block.items]
        return any(texts) and all(_is_date_line(text) for text in texts if text)
    return False


def _is_date_line(text: str) -> bool:
    """A few words holding a date, no sentence: "5:45 AM PST 11/19/2019 by Patrick Shanley", "기사입력 :[
    2018-09-28 17:32 ]"; "We opened on 2 May 2019." is the author's sentence."""
    found = [word for word in text.split() if _WORDLIKE.search(word)]
    if not found or len(found) > _DATE_LINE_WORDS or text.rstrip().endswith(_SENTENCE_ENDS) or not _DATE.search(text):
        return False
    beside = [word for word in _CLOCK.sub(" ", _DATE.sub(" ", text)).split() if _WORDLIKE.search(word)]
    fields = [field for field in _FIELD_BREAKS.split(text) if field.strip()]
    return len(beside) <= _BESIDE_DATE_WORDS or (
        len(fields) >= _FIELDS and all(len(field.split()) <= _FIELD_WORDS for field in fields)
    )


def _is_prose(block: Block) -> bool:
    text = block.text
    return block.kind == "paragraph" and (len(text.split()) >= _HEAD_PROSE_WORDS or len(text) >= _HEAD_PROSE_CHARACTERS)


#: What tells a picture's credit from the words of its caption: a copyright mark, a Creative Commons licence, a
#: site's name ("Shutterstock.com", "iStock.com").
_CREDIT_CUE = re.compile(r"©|\bCC[ -]BY\b|\b[A-Za-z][\w-]+\.[a-z]{2,6}\b(?![\w.])")
_CREDIT_WORDS = 8
_CAPTION_SENTENCE_END = re.compile(r"[.!?\u3002]\s+")


def without_credit(caption: str) -> str:
    """``caption`` without the picture's credit that closes it, after its last sentence or in parentheses ("…
    im Abendrot. Bild: TebNad/Shutterstock.com", "… getarnt. (mlharing / iStock.com)", "… Foto: Timur | flickr |
    CC BY 2.0"): at most :data:`_CREDIT_WORDS` words, no sentence, holding a cue (:data:`_CREDIT_CUE`). A caption
    that is a credit alone stays (the picture's only words). Raises nothing."""
    ends = list(_CAPTION_SENTENCE_END.finditer(caption))
    if not ends:
        return caption
    start = ends[-1].end()
    credit = caption[start:].strip()
    inner = credit[1:-1] if credit.startswith("(") and credit.endswith(")") else credit
    if (
        0 < len([word for word in inner.split() if _WORDLIKE.search(word)]) <= _CREDIT_WORDS
        and not inner.rstrip().endswith((".", "!", "?"))
        and _CREDIT_CUE.search(inner)
    ):
        return caption[:start].rstrip()
    return caption


#: Social networks: a link to a profile on one closes a post as a call to follow ("Follow @BGRDeals on Twitter").
_SOCIAL = frozenset(
    {
        "twitter.com",
        "x.com",
        "facebook.com",
        "instagram.com",
        "linkedin.com",
        "youtube.com",
        "tiktok.com",
        "pinterest.com",
        "threads.net",
        "bsky.app",
        "t.me",
    }
)
#: A profile's address is its name (``/AP_Sports``, ``/@oakviewpt``) or one of these sections and its name; a
#: post's (``/status/…``, ``/watch?v=…``, :data:`_POST_SECTIONS`) is a source the author cites or shows.
_PROFILE_SECTIONS = frozenset({"company", "in", "channel", "c", "user", "pages", "intent"})
_POST_SECTIONS = frozenset({"watch", "shorts", "embed", "live", "playlist", "p", "reel", "reels", "video", "videos"})
#: A newsletter's sign-up page: a mailing service's form, or an address naming a subscription in the languages
#: practices write. A practice's booking page or phone number is none.
_SUBSCRIBE_HOSTS = frozenset({"eepurl.com", "mailchi.mp", "list-manage.com"})
_SUBSCRIBE_PATH = re.compile(r"newsletter|subscri|suscri|abonn|assin(?:e|ar|atura)", re.IGNORECASE)
_SPELLED_URL = re.compile(r"https?://\S+[\w/]")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+")
#: Who else reported for a news post, as its closing line credits them ("Keith Bradsher contributed reporting from
#: Hong Kong.", "Additional reporting by …", "Associated Press writers … contributed to this report."), in the
#: languages practices write; the line names them (:data:`_CREDIT_NAMES` capitalised words but its first at least)
#: in at most :data:`_CREDIT_WORDS` words. The post's own byline ("(Reporting by Will Dunham; Editing by Tom
#: Brown)") names its author: the benchmarks count it as the article's.
_CREDIT = re.compile(
    r"\bcontributed (?:reporting|to this (?:report|story|article))|\badditional reporting by\b"
    r"|\bcon informaci[oó]n (?:adicional )?de\b|\bcom informa[cç][oõ]es d|\bmit material von\b|\bmitarbeit:"
    r"|\ba contribu[ée] [àa] (?:cet article|ce reportage)",
    re.IGNORECASE,
)
_CREDIT_WORDS = 50
_CREDIT_NAMES = 2


def page_dates(html: str) -> frozenset[str]:
    """The days ``html``, when it is a whole page, says it was first published and last updated on (YYYY-MM-DD, by
    htmldate: its metadata, its address, its date lines); none for a feed's fragment, whose dates are the post's
    own words. Raises nothing."""
    if not is_whole_page(html):
        return frozenset()
    import htmldate  # paid only by a run that meets a whole page, as trafilatura is

    found = {htmldate.find_date(html, original_date=original) for original in (True, False)}
    return frozenset(day for day in found if day)


def without_closing_lines(blocks: list[Block], dates: Callable[[], frozenset[str]] = frozenset) -> list[Block]:
    """``blocks`` without what a site or a newsroom appends to the post's last paragraphs: the sentences closing
    them that call to follow the site or subscribe to its newsletter (:func:`_calls_start`), the line crediting
    who else reported for it (:func:`_is_credit`), and below its last paragraph of prose the time stamps of the
    day the page was published or updated (:func:`_is_own_date_line`; ``dates`` gives them, from :func:`page_dates`,
    asked only when such a line is there: htmldate reads a whole page). A
    practice's own call to book or to call it stays: it links to no social network and no sign-up page; so does a
    date line of another day (an event's). Raises nothing."""
    prose = max((index for index, block in enumerate(blocks) if _is_prose(block)), default=len(blocks))
    blocks = [block for index, block in enumerate(blocks) if index <= prose or not _is_own_date_line(block, dates)]
    while blocks and blocks[-1].kind == "paragraph":
        last = blocks[-1]
        if _is_credit(last.text):
            blocks.pop()
            continue
        cut = _calls_start(last)
        if cut is None:
            break
        if not "".join(span.text for span in last.spans)[:cut].strip():
            blocks.pop()
            continue
        blocks[-1] = replace(last, spans=_cut(last.spans, cut))
        break
    return blocks


def _is_own_date_line(block: Block, dates: Callable[[], frozenset[str]]) -> bool:
    """Whether ``block`` is the page's time stamp: a date line (:func:`_is_date_line`) with a time of day, of one
    of ``dates`` (read by htmldate). A day alone under a guide ("Last Updated: Nov 4, 2025") tells a reader how
    fresh its advice is; the benchmarks count it as the article's."""
    if block.kind != "paragraph" or not _is_date_line(block.text) or not _CLOCK.search(block.text):
        return False
    days = dates()
    if not days:
        return False
    import htmldate

    return htmldate.find_date(f"<html><body><p>{escape(block.text)}</p></body></html>") in days


def _calls_start(paragraph: Block) -> int | None:
    """Where the run of sentences closing ``paragraph`` that are calls starts (``None`` when its last one is
    none): a call links to a social network's profile or to a sign-up page, or spells the address of one."""
    text = "".join(span.text for span in paragraph.spans)
    bounds = [(span, sum(len(s.text) for s in paragraph.spans[:index])) for index, span in enumerate(paragraph.spans)]
    starts = [0, *(match.end() for match in _SENTENCE_BREAK.finditer(text.rstrip()))]
    cut = None
    end = len(text)
    for start in reversed(starts):
        links = [span.href for span, at in bounds if span.href and at < end and at + len(span.text) > start]
        links += _SPELLED_URL.findall(text[start:end])
        if not any(_is_call_link(str(link)) for link in links):
            break
        cut, end = start, start
    return cut


def _is_call_link(url: str) -> bool:
    """Whether ``url`` is a social network's profile or a newsletter's sign-up page."""
    parts = urlsplit(url)
    host = _host(url)
    segments = [segment for segment in parts.path.split("/") if segment]
    if any(host == social or host.endswith("." + social) for social in _SOCIAL):
        if segments and segments[0].lower() in _POST_SECTIONS:
            return False  # a video or a post the author shows: the player of a video closing the post is a link
        return len(segments) == 1 or (len(segments) == 2 and segments[0] in _PROFILE_SECTIONS)
    subscribe = any(host == name or host.endswith("." + name) for name in _SUBSCRIBE_HOSTS)
    return subscribe or bool(_SUBSCRIBE_PATH.search(parts.path))


def _cut(spans: tuple[Span, ...], cut: int) -> tuple[Span, ...]:
    """``spans`` up to character ``cut`` of their text, without the spaces closing them."""
    kept, at = [], 0
    for span in spans:
        if at >= cut:
            break
        kept.append(replace(span, text=span.text[: cut - at]))
        at += len(span.text)
    while kept and not kept[-1].text.strip():
        kept.pop()
    if kept:
        kept[-1] = replace(kept[-1], text=kept[-1].text.rstrip())
    return tuple(kept)


def _is_credit(text: str) -> bool:
    """A line crediting who reported or edited the post (:data:`_CREDIT`), naming them."""
    found = text.split()
    names = [word for word in found[1:] if word[:1].isupper()]
    return len(found) <= _CREDIT_WORDS and len(names) >= _CREDIT_NAMES and bool(_CREDIT.search(text))
