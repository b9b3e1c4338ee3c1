"""Read an item's (already cleaned) HTML tree into a :class:`carecast.document.Document`, once, at ingest.

The walk keeps structure a reader sees: headings, paragraphs, lists (nested, ordered, with their numbers), data
tables (layout tables are read as the blocks they hold), figures with captions, embeds (a YouTube or Vimeo player
becomes a link and its thumbnail), quotes, call-to-action buttons and footnotes. Images are real pictures only:
the lazy-loading attributes (``data-src``, ``data-lazy-src``, ``data-srcset``, ``srcset``, a ``<noscript><img>``)
before a ``src`` that is a ``data:`` URL or a 1x1 placeholder. A short block whose class names it an image credit
(``credit``, ``copyright``, a caption's ``source``) is no text of the post. What platforms and page templates add
around the post is trimmed afterwards (:func:`carecast.boilerplate.trim_boilerplate`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import lxml.html

from carecast.document import Block, Document, Picture, Span
from carecast.markup import naming_id
from carecast.postlines import without_credit

_HEADINGS = {"h1": 2, "h2": 2, "h3": 3, "h4": 4, "h5": 4, "h6": 4}
_CONTAINERS = frozenset(
    {"div", "section", "article", "main", "header", "footer", "aside", "center", "body", "html", "span", "font"}
)
_BLOCK_TAGS = frozenset(
    {"p", "ul", "ol", "table", "figure", "blockquote", "pre", "dl", "hr", "iframe", "video", "audio", "embed"}
    | set(_HEADINGS)
    | _CONTAINERS - {"span", "font"}
)
_INLINE_STYLE = {"strong": "strong", "b": "strong", "em": "em", "i": "em"}
_BUTTON_CLASSES = re.compile(r"\b(button|btn|cta)\b|wp-block-button__link|elementor-button|hs-cta", re.IGNORECASE)
_FOOTNOTE_CLASSES = re.compile(r"footnote|endnote|references", re.IGNORECASE)
#: An image's credit set apart from its caption by the page ("Foto: …", "By U.S. Customs …"): not the post's text.
_CREDIT_CLASSES = re.compile(
    r"(?<![a-z])(?:credits?|copyright|photo-?credit|image-?credit|bildnachweis|bildquelle|fotonachweis)(?![a-z])"
    r"|caption[-_]+source|(?:image|photo|img|bild|foto)[-_]?source",
    re.IGNORECASE,
)
#: A credit is short; a longer block of that class holds more than the credit.
_CREDIT_WORDS = 30
_PLACEHOLDER = re.compile(r"^data:|blank\.gif|spacer\.gif|pixel\.gif|placeholder|lazy[-_]?load|1x1", re.IGNORECASE)
_LAZY_ATTRIBUTES = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url", "data-hi-res-src")
_SRCSET_ATTRIBUTES = ("data-srcset", "data-lazy-srcset", "srcset")
_YOUTUBE = re.compile(r"(?:youtube(?:-nocookie)?\.com/(?:embed/|v/|watch\?v=)|youtu\.be/)([\w-]{6,})")
_VIMEO = re.compile(r"player\.vimeo\.com/video/(\d+)")
#: Players whose frame is a video or a recording worth a link; any other frame (an ad, a widget, a form) is not.
_PLAYERS = re.compile(
    r"^https://(?:[\w-]+\.)*(?:youtube(?:-nocookie)?\.com|youtu\.be|vimeo\.com|wistia\.(?:com|net)|loom\.com"
    r"|spotify\.com|soundcloud\.com|podbean\.com|buzzsprout\.com|ted\.com|dailymotion\.com)/",
    re.IGNORECASE,
)

#: Resolves a URL of the HTML against the post's address: absolute http(s), or None.
Resolve = Callable[[str], "str | None"]


def image_url(element: lxml.html.HtmlElement, resolve: Resolve) -> str | None:
    """The real picture an ``<img>`` (or ``<source>``) shows: a lazy-loading attribute, the widest of a ``srcset``,
    else its ``src`` unless that is a placeholder (``data:``, a 1x1 or blank GIF). None when it shows none (an
    ``<img>`` in a ``<picture>`` stands for the whole: :func:`picture_url`)."""
    for name in _LAZY_ATTRIBUTES:
        value = (element.get(name) or "").strip()
        if value and not _PLACEHOLDER.search(value) and (url := resolve(value)):
            return url
    for name in _SRCSET_ATTRIBUTES:
        if (value := element.get(name)) and (widest := _widest(value)) and (url := resolve(widest)):
            return url
    src = (element.get("src") or "").strip()
    if not src or _PLACEHOLDER.search(src) or (element.get("width"), element.get("height")) == ("1", "1"):
        return None
    return resolve(src)


#: Formats every mail client and network shows (Outlook shows no WebP; Instagram takes JPEG).
_SHOWN_EVERYWHERE = re.compile(r"^image/(?:jpeg|jpg|png|gif)$", re.IGNORECASE)


def picture_url(element: lxml.html.HtmlElement, resolve: Resolve) -> str | None:
    """The picture a ``<picture>`` shows: the widest candidate of its first ``<source>`` meant for every screen (no
    ``media``) in a format every client shows (JPEG, PNG, GIF, or no ``type``), else its ``<img>``'s, else any
    source's. None when it shows none."""
    sources = list(element.iter("source"))
    plain = [s for s in sources if not s.get("media") and _SHOWN_EVERYWHERE.match(s.get("type") or "image/jpeg")]
    return next((url for found in (*plain, *element.iter("img"), *sources) if (url := image_url(found, resolve))), None)


def enclosing_picture(image: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """The ``<picture>`` an ``<img>`` is the fallback of, else the image itself: the two are one picture. (lxml's
    HTML parser knows no void ``<source>``: the ``<img>`` is read inside the last source, not beside it.)"""
    return next(image.iterancestors("picture"), image)


def _widest(srcset: str) -> str | None:
    """The candidate of a ``srcset`` with the largest width (``800w``) or density (``2x``); the last without."""
    best, best_size = None, -1.0
    for candidate in srcset.split(","):
        url, _, descriptor = candidate.strip().partition(" ")
        if not url or url.startswith("data:"):
            continue
        match = re.match(r"\s*(\d+(?:\.\d+)?)[wx]", descriptor)
        size = float(match.group(1)) if match else 0.0
        if size >= best_size:
            best, best_size = url, size
    return best


def unwrap_noscript_images(root: lxml.html.HtmlElement) -> None:
    """Let a ``<noscript><img></noscript>`` stand for the lazy placeholders beside it: the ``<img>`` right before
    it, and every other picture of a frame of no words around it (Medium's blurred preview and lazy element); drop
    every other ``<noscript>`` (what a page shows without scripts is not the post)."""
    for noscript in list(root.iter("noscript")):
        if noscript.getparent() is None:
            continue
        inner = lxml.html.fragment_fromstring(noscript.text, create_parent="div") if noscript.text else noscript
        images = list(inner.iter("img"))
        if not images:
            noscript.drop_tree()
            continue
        frame = noscript.getparent()
        words = len(frame.text_content().split()) - len(noscript.text_content().split())
        previous = noscript.getprevious()
        placeholders = [previous] if previous is not None and previous.tag == "img" else []
        if not words:
            placeholders = [image for image in frame.iter("img") if noscript not in set(image.iterancestors())]
        for placeholder in placeholders:
            placeholder.drop_tree()
        parent, index = noscript.getparent(), noscript.getparent().index(noscript)
        for offset, image in enumerate(images):
            parent.insert(index + offset, image)
        noscript.drop_tree()


def is_credit(element: lxml.html.HtmlElement) -> bool:
    """Whether ``element`` is an image's credit set apart by its class (:data:`_CREDIT_CLASSES`), short."""
    return bool(_CREDIT_CLASSES.search(_classes(element))) and len(element.text_content().split()) <= _CREDIT_WORDS


def watch_url(url: str) -> str | None:
    """The page of the video a player URL shows (YouTube, Vimeo), or None for any other URL."""
    if match := _YOUTUBE.search(url):
        return f"https://www.youtube.com/watch?v={match.group(1)}"
    if match := _VIMEO.search(url):
        return f"https://vimeo.com/{match.group(1)}"
    return None


def read_document(root: lxml.html.HtmlElement, resolve: Resolve, resolve_link: Resolve) -> Document:
    """The blocks of ``root`` (a cleaned tree). ``resolve`` makes image and embed URLs absolute http(s);
    ``resolve_link`` link targets (contact links too). Raises nothing on odd HTML."""
    reader = _Reader(resolve, resolve_link)
    reader.container(root)
    reader.flush()
    return Document(tuple(reader.blocks))


class _Reader:
    """Walks a tree, collecting blocks and the inline spans of the paragraph being read."""

    def __init__(self, resolve: Resolve, resolve_link: Resolve) -> None:
        self.resolve, self.resolve_link = resolve, resolve_link
        self.blocks: list[Block] = []
        self.spans: list[Span] = []

    def flush(self) -> None:
        """End the paragraph being read (if it has words); one that is only a link to a video is that video."""
        links = {span.href for span in self.spans if span.text.strip()}
        if len(links) == 1 and (href := links.pop()) and watch_url(href) == href:
            title = "".join(span.text for span in self.spans).strip()
            self.blocks.append(_embed(href, "" if title == href else title, None))
        elif "".join(span.text for span in self.spans).strip():
            spans = list(self.spans)
            spans[0] = Span(spans[0].text.lstrip(), spans[0].href, spans[0].style, spans[0].note)
            self.blocks.append(Block(kind="paragraph", spans=tuple(spans)))
        self.spans = []

    def text(self, text: str | None, href: str | None = None, style: str = "") -> None:
        if text:
            text = re.sub(r"[ \t\r\n\f]+", " ", text)
            self.spans.append(Span(text, href, style))  # type: ignore[arg-type]

    def container(self, element: lxml.html.HtmlElement, href: str | None = None, style: str = "") -> None:
        """Read ``element``'s content: its text as spans, its children each as block or inline."""
        self.text(element.text, href, style)
        for child in element:
            if isinstance(child.tag, str):
                self.element(child, href, style)
            self.text(child.tail, href, style)

    def element(self, element: lxml.html.HtmlElement, href: str | None, style: str) -> None:
        tag = element.tag
        if tag in _HEADINGS:
            self.flush()
            block = _Reader(self.resolve, self.resolve_link)
            block.container(element)
            if text := "".join(span.text for span in block.spans).strip():
                spans, url = (Span(" ".join(text.split())),), _heading_link(block.spans)
                self.blocks.append(Block(kind="heading", level=_HEADINGS[tag], spans=spans, url=url))
        elif tag in {"ul", "ol"}:
            self.flush()
            self.list(element)
        elif tag == "table":
            self.flush()
            self.table(element)
        elif tag == "figure":
            self.flush()
            self.figure(element)
        elif tag == "blockquote":
            self.flush()
            inner = self.nested(element)
            if inner:
                self.blocks.append(Block(kind="quote", items=(tuple(inner),)))
        elif tag in {"iframe", "video", "audio", "embed", "object"}:
            self.flush()
            if embed := self.embed(element, ""):
                self.blocks.append(embed)
        elif tag in {"img", "picture"}:
            self.flush()
            if picture := self.picture(element):
                self.blocks.append(Block(kind="figure", picture=picture))
        elif tag == "br":
            self.spans.append(Span("\n", href, style))  # type: ignore[arg-type]
        elif (tag == "sup" and _is_note_reference(element)) or (tag == "a" and _is_note_reference(element)):
            self.spans.append(Span(element.text_content().strip(), note=True))
        elif is_credit(element):
            if tag in _BLOCK_TAGS or tag in {"li", "figcaption", "caption"}:
                self.flush()
        elif tag == "a":
            self.link(element, style)
        elif _FOOTNOTE_CLASSES.search(_classes(element)):
            self.flush()
            notes = [tuple(self.nested(item)) for item in element.iter("li")] or [tuple(self.nested(element))]
            self.blocks.append(Block(kind="footnotes", items=tuple(note for note in notes if note)))
        elif tag in _BLOCK_TAGS or tag in {"li", "dt", "dd", "figcaption", "caption", "tr", "td", "th", "pre"}:
            self.flush()
            self.container(element)
            self.flush()
        elif tag in {"script", "style", "template", "svg", "form", "button", "input", "select", "nav", "noscript"}:
            return
        else:
            self.container(element, href, _INLINE_STYLE.get(tag, style))

    def link(self, element: lxml.html.HtmlElement, style: str) -> None:
        href = self.resolve_link(element.get("href") or "") if element.get("href") else None
        label = " ".join(element.text_content().split())
        images = [image for image in element.iter("img")]
        if href and label and not images and _BUTTON_CLASSES.search(_classes(element) + " " + _parent_classes(element)):
            self.flush()
            self.blocks.append(Block(kind="button", url=href, caption=label))
            return
        if images and not label:  # a linked picture is the picture
            self.flush()
            if picture := self.picture(images[0]):
                self.blocks.append(Block(kind="figure", picture=picture))
            return
        self.container(element, href, style)

    def nested(self, element: lxml.html.HtmlElement) -> list[Block]:
        reader = _Reader(self.resolve, self.resolve_link)
        reader.container(element)
        reader.flush()
        return reader.blocks

    def list(self, element: lxml.html.HtmlElement) -> None:
        items = tuple(tuple(self.nested(item)) for item in element if item.tag == "li")
        items = tuple(item for item in items if item)
        if not items:
            return
        start = element.get("start") or ""
        self.blocks.append(
            Block(
                kind="list",
                ordered=element.tag == "ol",
                start=int(start) if start.strip().isdigit() else 1,
                items=items,
            )
        )

    def table(self, element: lxml.html.HtmlElement) -> None:
        rows = [row for row in element.iter("tr") if _owning_table(row) is element]
        cells = [[cell for cell in row if cell.tag in {"td", "th"}] for row in rows]
        blocky = any(_holds_blocks(cell) for row in cells for cell in row)
        layout = blocky or element.find(".//table") is not None or max((len(row) for row in cells), default=0) < 2
        if layout:  # a table that lays the page out: read what it holds
            for row in cells:
                for cell in row:
                    self.blocks.extend(self.nested(cell))
            return
        texts = tuple(tuple(" ".join(cell.text_content().split()) for cell in row) for row in cells)
        texts = tuple(row for row in texts if any(row))
        if texts:
            headed = all(cell.tag == "th" for cell in cells[0]) or rows[0].getparent().tag == "thead"
            header = 1 if headed and any(texts[0]) else 0
            self.blocks.append(Block(kind="table", rows=texts, header_rows=header))

    def figure(self, element: lxml.html.HtmlElement) -> None:
        caption_element = element.find(".//figcaption")
        for credit in [] if caption_element is None else list(caption_element.iter()):
            if credit is not caption_element and _CREDIT_CLASSES.search(_classes(credit)):
                credit.drop_tree()  # the picture's credit beside its caption, e.g. "Photo: …"
        caption = (
            without_credit(" ".join(caption_element.text_content().split())) if caption_element is not None else ""
        )
        for player in element.iter("iframe", "video", "audio", "embed", "object"):
            if embed := self.embed(player, caption):
                self.blocks.append(embed)
                return
        found = [enclosing_picture(image) for image in element.iter("img", "picture")]
        images = [image for number, image in enumerate(found) if image not in found[:number] and self.picture(image)]
        if not images:
            return  # a caption without its picture says nothing
        for number, image in enumerate(images):
            picture = self.picture(image)
            last = number == len(images) - 1
            self.blocks.append(Block(kind="figure", picture=picture, caption=caption if last else ""))

    def picture(self, element: lxml.html.HtmlElement) -> Picture | None:
        element = enclosing_picture(element) if element.tag == "img" else element
        if element.tag == "picture":  # the <img>'s alt and size, the best candidate of the whole
            url, image = picture_url(element, self.resolve), next(iter(element.iter("img")), element)
        else:
            url, image = image_url(element, self.resolve), element
        if not url:
            return None
        alt = decoded_alt(image.get("alt"))
        return Picture(url=url, alt=alt, width=_size(image.get("width")), height=_size(image.get("height")))

    def embed(self, element: lxml.html.HtmlElement, caption: str) -> Block | None:
        source = element.get("src") or element.get("data-src") or element.get("data")
        if not source:
            inner = next(iter(element.iter("source")), None)
            source = inner.get("src") if inner is not None else None
        url = self.resolve(source or "")
        if not url or (element.tag in {"iframe", "embed", "object"} and not _PLAYERS.match(url)):
            return None
        poster = self.resolve(element.get("poster") or "")
        title = caption or " ".join((element.get("title") or "").split())
        return _embed(watch_url(url) or url, title, Picture(url=poster, alt=title or None) if poster else None)


def _embed(url: str, title: str, thumbnail: Picture | None) -> Block:
    """A video or recording as a link to its page, with YouTube's own thumbnail when the player gives none."""
    if thumbnail is None and (match := _YOUTUBE.search(url)):
        thumbnail = Picture(url=f"https://img.youtube.com/vi/{match.group(1)}/hqdefault.jpg", alt=title or None)
    return Block(kind="embed", url=url, caption=title, picture=thumbnail)


_ESCAPED = re.compile(r"\\u\{([0-9a-fA-F]{1,6})\}|\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})")


def decoded_alt(alt: str | None) -> str | None:
    """An alt text as a reader hears it: escapes a platform left in it (``\\u{200d}``, ``\\u2640``) decoded,
    whitespace collapsed; None when empty."""

    def character(match: re.Match[str]) -> str:
        code = int(next(group for group in match.groups() if group), 16)
        return chr(code) if code <= 0x10FFFF else ""

    return " ".join(_ESCAPED.sub(character, alt or "").split()) or None


def _is_note_reference(element: lxml.html.HtmlElement) -> bool:
    """A footnote's number in the text: a ``<sup>``, or a link to ``#footnote-1`` (Substack's), of a number."""
    text = element.text_content().strip()
    link = element if element.tag == "a" else element.find(".//a")
    to_note = link is not None and (link.get("href") or "").startswith("#")
    if element.tag == "a":
        return to_note and bool(re.fullmatch(r"\[?\d{1,3}\]?", text))
    return bool(re.fullmatch(r"\[?\d{1,3}\]?|[*†‡]", text)) and (to_note or text.isdigit() or text.startswith("["))


def _heading_link(spans: list[Span]) -> str | None:
    """Where a heading that is a link leads (one target, at least half its words: "Editorial <title>"), a
    teaser's title; None for a heading that is none or links in passing."""
    targets = {span.href for span in spans if span.href}
    linked = sum(len(span.text.strip()) for span in spans if span.href)
    total = sum(len(span.text.strip()) for span in spans)
    return targets.pop() if len(targets) == 1 and 2 * linked >= total else None


def _holds_blocks(cell: lxml.html.HtmlElement) -> bool:
    return cell.find(".//p") is not None or cell.find(".//div/div") is not None


def _owning_table(row: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    parent = row.getparent()
    while parent is not None and parent.tag != "table":
        parent = parent.getparent()
    return parent


def _size(value: str | None) -> int | None:
    match = re.fullmatch(r"\s*(\d{1,5})\s*(px)?\s*", value or "")
    return int(match.group(1)) if match else None


def _classes(element: lxml.html.HtmlElement) -> str:
    return str(element.get("class") or "") + " " + naming_id(element)  # a heading's anchor ("…-tax-credit") is no name


def _parent_classes(element: lxml.html.HtmlElement) -> str:
    parent = element.getparent()
    return _classes(parent) if parent is not None else ""
