"""Make untrusted HTML safe for templates, clean it of feed boilerplate, pick its picture, turn it into text.

Every piece of HTML a source yields (a feed's ``content:encoded``, a Markdown post's body) goes through
:func:`sanitize_html` before any template sees it: only a small set of formatting tags survives, links keep
absolute http(s) URLs or ``tel:``, ``mailto:`` and ``sms:`` ones, images absolute http(s) URLs, and links get
``rel="noopener noreferrer nofollow"``. A feed's HTML first goes through :func:`clean_body`, which removes what a
reader should never see: WordPress's "appeared first on" footer, "Continue reading" links, share blocks, a heading
that repeats the title, the practice's own ``strip:`` patterns, and the images that are no pictures (emoji, which
become their character again, icons, tracking pixels). :func:`choose_image` then picks the item's picture: the
feed's own (enclosure, ``media:content``, ``media:thumbnail``) before the first big-enough photo of the body.
:func:`html_to_text` gives the plain-text form (for SMS, X, the ``text/plain`` part of a newsletter).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import lxml.html
import nh3
from inscriptis import get_text
from lxml.etree import ParserError

from carecast.boilerplate import trim_boilerplate
from carecast.document import Document, render_html, render_text
from carecast.furniture import drop_form_boxes, drop_hover_cards
from carecast.markup import HEADINGS, flat_text
from carecast.page import main_content
from carecast.postlines import drop_end_notes, page_dates
from carecast.reader import (
    decoded_alt,
    enclosing_picture,
    image_url,
    picture_url,
    read_document,
    unwrap_noscript_images,
)
from carecast.text import split_sentences
from carecast.tracking import is_tracking, without_tracking

ALLOWED_TAGS = frozenset({"p", "a", "strong", "em", "ul", "ol", "li", "h2", "h3", "h4", "blockquote", "img", "br"})
ALLOWED_ATTRIBUTES = {"a": {"href"}, "img": {"src", "alt", "width", "height"}}
LINK_REL = "noopener noreferrer nofollow"
#: Link schemes a reader can act on besides the web: call, write or text the practice.
CONTACT_SCHEMES = frozenset({"tel", "mailto", "sms"})
_URL_ATTRIBUTES = frozenset({("a", "href"), ("img", "src")})
_BLANK_LINES = re.compile(r"\n{3,}")
_DEFAULT_PORTS = {"http": 80, "https": 443}

#: The narrowest picture worth showing as an item's image (declared or measured width, in pixels).
MIN_IMAGE_WIDTH = 300
#: At most this wide or high (declared): an icon, an avatar or a button, never content.
ICON_SIZE = 96
#: Picture types that are no photo: animations, vector icons, favicons.
_NOT_PHOTO = re.compile(r"\.(gif|svg|ico|bmp)(?:$|[?#])", re.IGNORECASE)
#: WordPress and Jetpack emoji images, and other platforms' emoji: shown as their character instead.
_EMOJI = re.compile(r"s\.w\.org/images/core/emoji|/emoji/|twemoji|emoji\.", re.IGNORECASE)
_EMOJI_CLASSES = frozenset({"wp-smiley", "emoji", "emoticon"})
#: Tracking pixels and counters of feed services and analytics (FeedBurner's ``~r/`` and ``~ff/`` included).
_TRACKER = re.compile(
    r"feeds\.feedburner\.com/~[rf]f?/|feedburner\.google\.com|/~ff/|pixel\.wp\.com|stats\.wordpress\.com"
    r"|google-analytics\.com|doubleclick\.net|quantserve\.com|scorecardresearch\.com|/pixel(?:\.gif|\.png)?(?:$|[?/])"
    r"|/tracking?/|/open\.gif|/beacon|facebook\.com/tr",
    re.IGNORECASE,
)
_ICON = re.compile(r"gravatar\.com|/avatar|/favicon|/icons?/|[-_/]icon[-_.]", re.IGNORECASE)
_ICON_CLASSES = re.compile(r"icon|avatar|logo|badge|button", re.IGNORECASE)
#: Blocks of share buttons, related posts and feed "flare", by the class names the platforms give them.
_SHARE_CLASSES = re.compile(
    r"(?:^|[-_\s])(?:share|sharing|social)(?:[-_\s]|$)|sharedaddy|sharethis|addtoany|a2a_|jp-relatedposts"
    r"|related-posts|feedflare",
    re.IGNORECASE,
)
#: Link preview cards: Ghost's bookmark card, WordPress's embed block.
_LINK_CARD_CLASSES = re.compile(r"kg-bookmark-card|wp-block-embed|link-preview", re.IGNORECASE)
#: Whole blocks feeds append to every post (matched against the block's text, whitespace collapsed).
BOILERPLATE = (
    re.compile(r"^the post .+ appeared first on .+$", re.IGNORECASE),  # WordPress (Yoast) footer
    re.compile(r"^(share this|like this|related|share on \w+)\s*:?\s*$", re.IGNORECASE),
    re.compile(r"^(\[(…|\.\.\.|&hellip;)\])$"),
)
#: Links that only lead to the rest of the post, which every channel links to itself.
_MORE_LINK = re.compile(
    r"^(continue reading|read more|read the (full|rest of the) (post|article|story)|keep reading)\b", re.IGNORECASE
)
_WORDPRESS_SIZE = re.compile(r"(?:-\d{2,5}x\d{2,5}|-scaled|@[23]x)(\.\w+)$")
_GHOST_SIZE = re.compile(r"/size/w\d+/")
_BLOGGER_SIZE = re.compile(r"/(s\d+(-c)?|w\d+-h\d+(-\w+)?)/")
_WIX_TRANSFORM = re.compile(r"/v1/(fit|fill|crop)/.*$")
_BLOCKS = frozenset({"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "figure", "figcaption"})


def absolute_http_url(url: str, base_url: str | None = None) -> str | None:
    """``url`` made absolute against ``base_url``, or None unless the result is an http(s) URL with a host."""
    if not url.strip():
        return None  # an empty reference would resolve to the base itself
    candidate = urljoin(base_url, url.strip()) if base_url else url.strip()
    try:
        parts = urlsplit(candidate)
    except ValueError:  # e.g. an unbalanced IPv6 bracket in an untrusted feed
        return None
    return candidate if parts.scheme in {"http", "https"} and parts.netloc else None


def contact_url(url: str) -> str | None:
    """``url`` when it is a ``tel:``, ``mailto:`` or ``sms:`` link with something after the colon, else None."""
    scheme, _, rest = url.strip().partition(":")
    return url.strip() if scheme.lower() in CONTACT_SCHEMES and rest.strip() else None


def normalise_link(url: str) -> str:
    """``url`` without what changes when the same post moves or is shared: the identity of a post by its link.

    The scheme becomes https (a site moving to https keeps its posts), the host is lowercased without ``www.``,
    default ports, the trailing slash, the fragment and tracking parameters (:mod:`carecast.tracking`)
    go, and the other parameters are sorted. Raises ValueError on a URL that cannot be split (e.g. a port that is not
    a number).
    """
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").removeprefix("www.")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        netloc = f"{netloc}:{parts.port}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode(sorted((key, value) for key, value in pairs if not is_tracking(key)))
    return urlunsplit(("https", netloc, parts.path.rstrip("/"), query, ""))


def sanitize_html(html: str, *, base_url: str | None = None) -> str:
    """Keep only safe formatting tags; links keep absolute http(s) or contact URLs, images absolute http(s) ones.

    Relative URLs are resolved against ``base_url`` (the post's own address); without one, or when the result is
    neither http(s) nor ``tel:``/``mailto:``/``sms:`` (``javascript:``, ``data:``), the attribute is dropped.
    Never raises on malformed HTML.
    """

    def keep_url(tag: str, attribute: str, value: str) -> str | None:
        if (tag, attribute) == ("a", "href") and (contact := contact_url(value)):
            return contact
        if (tag, attribute) in _URL_ATTRIBUTES:
            return absolute_http_url(value, base_url)
        if attribute in {"width", "height"}:
            return value if value.strip().isdigit() else None
        return value

    # script and style are dropped with their content; every other unknown tag keeps its text.
    cleaner = nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=keep_url,
        link_rel=LINK_REL,
        url_schemes={"http", "https", *CONTACT_SCHEMES},
    )
    return cleaner.clean(html).strip()


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment: paragraphs separated by a blank line, list items as ``  * item``."""
    text = get_text(html) if html.strip() else ""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines))


def one_line(html: str) -> str:
    """The text of a short HTML fragment (a title) on one line, whitespace collapsed."""
    return " ".join(html_to_text(html).split())


@dataclass(frozen=True)
class Image:
    """A picture an item may show: absolute URL, alt text, and its size when the feed declares it."""

    url: str
    alt: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def is_photo(self) -> bool:
        """Big enough (when its width is declared) and of a photo type (not a GIF, SVG or icon file)."""
        big_enough = self.width is None or self.width >= MIN_IMAGE_WIDTH
        return big_enough and not _NOT_PHOTO.search(self.url) and not junk_image_kind(self.url)


def junk_image_kind(url: str, classes: str = "", width: int | None = None, height: int | None = None) -> str | None:
    """Why the image at ``url`` is no picture (``"emoji"``, ``"tracker"``, ``"icon"``), or None when it may be one.

    ``classes`` is its ``class`` attribute; ``width`` and ``height`` are what the HTML declares.
    """
    class_names = set(classes.lower().split())
    if class_names & _EMOJI_CLASSES or _EMOJI.search(url):
        return "emoji"
    if _TRACKER.search(url) or (width is not None and height is not None and width <= 2 and height <= 2):
        return "tracker"
    declared = [size for size in (width, height) if size is not None]
    if _ICON.search(url) or _ICON_CLASSES.search(classes) or (declared and max(declared) <= ICON_SIZE):
        return "icon"
    return None


@dataclass(frozen=True)
class CleanBody:
    """A feed entry's body once cleaned: its document, that document's HTML and text, and its photos, in order."""

    html: str
    text: str
    images: tuple[Image, ...]
    document: Document = field(default_factory=Document)


def clean_body(
    html: str, *, base_url: str | None = None, title: str | None = None, strip: Sequence[re.Pattern[str]] = ()
) -> CleanBody:
    """``html`` without boilerplate, junk images and a repeated title, then sanitised; its text and photos.

    Removes: share blocks, related posts and FeedBurner flare (by class); emoji images (replaced by their alt text,
    the emoji itself), icons and tracking pixels; "Continue reading" links; blocks matching :data:`BOILERPLATE` or
    one of the source's ``strip`` patterns; a first heading or paragraph that only repeats ``title``. Never raises
    on malformed HTML.
    """
    page = html
    dates = functools.cache(lambda: page_dates(page))  # htmldate reads the whole page: only for a line to judge
    html = main_content(html, base_url)
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div") if html.strip() else None
    except (ParserError, ValueError):
        root = None
    if root is None:
        return CleanBody(html="", text="", images=())
    unwrap_noscript_images(root)
    drop_hover_cards(root)
    drop_form_boxes(root)
    if html is page:  # a feed's fragment, or a page trafilatura found nothing in: its end notes are still there
        drop_end_notes(root, base_url)
    for element in list(root.iter("script", "style", "noscript")):
        element.drop_tree()
    for element in list(root.iter()):
        if element is not root and element.getparent() is not None and _SHARE_CLASSES.search(_classes(element)):
            element.drop_tree()
    _simplify_link_cards(root)
    images = _clean_images(root, base_url)
    for link in list(root.iter("a")):
        if _MORE_LINK.match(flat_text(link)):
            _drop(link)
    patterns = [*BOILERPLATE, *strip]
    for block in [element for element in root.iter(*_BLOCKS) if element is not root]:
        if block.getparent() is None or any(child.tag in _BLOCKS for child in block):
            continue  # already dropped with its parent, or a container whose blocks are judged one by one
        text = flat_text(block)
        if any(pattern.search(text) for pattern in patterns):
            _drop(block)
    _drop_empty_blocks(root)
    if title:
        _drop_repeated_title(root, title)
    document = read_document(root, lambda url: absolute_http_url(url, base_url), _link(base_url))
    document = trim_boilerplate(document, base_url, dates)
    shown = {picture.url for picture in document.pictures()}
    return CleanBody(
        html=render_html(document),
        text=render_text(document),
        images=tuple(image for image in images if image.url in shown and image.is_photo),
        document=document,
    )


def _link(base_url: str | None) -> Callable[[str], str | None]:
    """How a body's link targets are resolved: contact links as they are, others absolute http(s) without the
    author's tracking (each channel tags its own)."""

    def resolve(url: str) -> str | None:
        absolute = absolute_http_url(url, base_url)
        return contact_url(url) or (without_tracking(absolute) if absolute else None)

    return resolve


def choose_image(feed_images: Iterable[Image], body_images: Iterable[Image]) -> Image | None:
    """The item's picture: the first of the feed's own images that is a photo, else the first photo of the body.

    The feed's own (enclosure, ``media:content``, ``media:thumbnail``) come first: the platform chose them. Its
    alt text is the body's for the same picture when the feed gives none.
    """
    body = list(body_images)
    for image in [*feed_images, *body]:
        if image.is_photo:
            # A feed's own image has no alt text; the body's copy of the same picture often has.
            alt = image.alt or next((b.alt for b in body if b.alt and same_picture(b.url, image.url)), None)
            return Image(image.url, alt, image.width, image.height)
    return None


def same_picture(one: str, other: str) -> bool:
    """Whether two image URLs show the same picture, in whatever size the platform serves it: WordPress's
    ``-300x200`` variants, Ghost's ``/size/w600/``, Blogger's ``/s400/``, Squarespace's and Wix's query or path
    parameters."""
    return _picture_key(one) == _picture_key(other)


def _picture_key(url: str) -> str:
    parts = urlsplit(url)
    path = _WIX_TRANSFORM.sub("", parts.path)
    path = _GHOST_SIZE.sub("/", _BLOGGER_SIZE.sub("/", _WORDPRESS_SIZE.sub(r"\1", path)))
    return f"{parts.netloc.lower()}{path}"


def declared_size(value: object) -> int | None:
    """A declared width or height (``"600"``, ``"600px"``) as pixels; None when absent or relative (``"100%"``)."""
    match = re.fullmatch(r"\s*(\d{1,5})\s*(px)?\s*", str(value)) if value is not None else None
    return int(match.group(1)) if match else None


def _clean_images(root: lxml.html.HtmlElement, base_url: str | None) -> list[Image]:
    """Drop the images that are no pictures (an emoji becomes its alt text); return the others, absolute."""
    images = []
    for element in list(root.iter("img")):
        picture = enclosing_picture(element)  # in a <picture>, its fallback: its alt, the best of its sources
        resolve = functools.partial(absolute_http_url, base_url=base_url)
        url = picture_url(picture, resolve) if picture is not element else image_url(element, resolve)
        width, height = declared_size(element.get("width")), declared_size(element.get("height"))
        kind = junk_image_kind(url or "", _classes(element), width, height) if url else "no address"
        if kind is None and url:
            element.set("src", url)  # absolute, so the images kept can be told by their address
            images.append(Image(url=url, alt=decoded_alt(element.get("alt")), width=width, height=height))
            continue
        replacement = (element.get("alt") or "") if kind == "emoji" else ""
        element.tail = replacement + (element.tail or "")
        _drop(element)
    return images


def _simplify_link_cards(root: lxml.html.HtmlElement) -> None:
    """Replace each link preview card (Ghost's bookmark card, WordPress's embed) by a plain link to what it shows:
    its description, site icon and thumbnail are not the post's words."""
    for card in list(root.iter()):
        if card.getparent() is None or not _LINK_CARD_CLASSES.search(str(card.get("class") or "")):
            continue
        if next(card.iter(*_PLAYER_TAGS), None) is not None:
            continue  # a video embed, not a card: the reader makes it a link with its thumbnail
        link = next((a for a in card.iter("a") if a.get("href")), None)
        titled = next((e for e in card.iter() if "title" in str(e.get("class") or "")), link)
        if link is None or titled is None or not flat_text(titled):
            _drop(card)
            continue
        paragraph = lxml.html.Element("p")
        anchor = lxml.html.Element("a", href=str(link.get("href")))
        anchor.text = flat_text(titled)
        paragraph.append(anchor)
        paragraph.tail = card.tail
        card.getparent().replace(card, paragraph)


def _drop(element: lxml.html.HtmlElement) -> None:
    """Remove ``element`` and its content, keeping the text after it."""
    if element.getparent() is not None:
        element.drop_tree()


_PLAYER_TAGS = ("iframe", "video", "audio", "embed", "object")


def _drop_empty_blocks(root: lxml.html.HtmlElement) -> None:
    # A paragraph emptied of its "Continue reading" link or its tracking pixel would leave a blank gap.
    for block in reversed([element for element in root.iter(*_BLOCKS) if element is not root]):
        if block.getparent() is not None and not flat_text(block) and not list(block.iter("img", *_PLAYER_TAGS)):
            _drop(block)


def _drop_repeated_title(root: lxml.html.HtmlElement, title: str) -> None:
    """Drop the body's first block when it only repeats the title (Blogger often does), or the title opening the
    body's first words (Wix's excerpts start with it); or, among the first few blocks, the page's heading when the
    title holds it whole (a page's title adds the site's name or a date: "Post - Site") with the section labels
    above it ("Press releases", "Obituary"); a picture above it stays, captioned or not."""
    lead = (root.text or "").lstrip()
    if lead and lead[: len(title)].casefold() == title.casefold():
        root.text = lead[len(title) :].lstrip(" .:-\u2013\u2014\n")
        return
    blocks = [element for element in root if element.tag in _BLOCKS and flat_text(element)][:_TITLE_WITHIN]
    if blocks and _comparable(flat_text(blocks[0])) == _comparable(title) and not list(blocks[0].iter("img")):
        _drop(blocks[0])
        return
    wanted = f" {_comparable(title)} "
    for index, block in enumerate(blocks):
        heading = _comparable(flat_text(block))
        if block.tag in HEADINGS and len(heading.split()) >= _TITLE_WORDS and f" {heading} " in wanted:
            labels = [label for label in blocks[:index] if not list(label.iter("img"))]  # a picture is no label
            if all(len(flat_text(label).split()) <= _LABEL_WORDS for label in labels):
                for dropped in [*labels, block]:
                    _drop(dropped)
            return


#: How far into the body a page's own heading is looked for, how many words it has at least (fewer is a label
#: more than a title), and how many words a section label above it has at most.
_TITLE_WITHIN, _TITLE_WORDS, _LABEL_WORDS = 3, 3, 3


def _comparable(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def _classes(element: lxml.html.HtmlElement) -> str:
    return str(element.get("class") or "") + " " + str(element.get("id") or "")


def excerpt_html(html: str, words: int = 60) -> tuple[str, bool]:
    """The opening of (sanitised) ``html``, about ``words`` words long and ending on a sentence, and whether it is
    shorter than the whole.

    Whole blocks (paragraphs, lists, headings) are kept while they fit; a block that would run far past ``words``
    is cut after its last sentence that fits, as plain text. A lone heading never ends an excerpt. Never raises.
    """
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div") if html.strip() else None
    except (ParserError, ValueError):
        root = None
    if root is None:
        return html, False
    if (root.text or "").strip():  # text outside any block (Wix's plain excerpts): a paragraph of its own
        lead = lxml.html.Element("p")
        lead.text, root.text = root.text, None
        root.insert(0, lead)
    kept: list[str] = []
    count = 0
    blocks = list(root)
    for number, block in enumerate(blocks):
        size = len(block.text_content().split())
        if count and count + size > words * 4 // 3:
            cut = _first_sentences(block.text_content(), words - count) if block.tag == "p" else ""
            if cut:
                kept.append(f"<p>{escape(cut)}</p>")
            return _without_trailing_heading(kept), True
        if not count and size > words * 4 // 3:
            kept.append(f"<p>{escape(_first_sentences(block.text_content(), words) or _first_words(block, words))}</p>")
            return "".join(kept), True
        kept.append(lxml.html.tostring(block, encoding="unicode"))
        count += size
        if count >= words and number + 1 < len(blocks):
            return _without_trailing_heading(kept), True
    return html, False


def _first_sentences(text: str, words: int) -> str:
    """The longest run of whole sentences of ``text`` within ``words`` words; "" when not even one fits."""
    # Whole sentences as every channel splits them: "8 a.m. on weekdays" is one.
    sentences = split_sentences(" ".join(text.split()))
    out, count = "", 0
    for sentence in sentences:
        size = len(sentence.split())
        if count + size > words:
            break
        out, count = out + sentence, count + size
    return out.strip()


def _first_words(block: lxml.html.HtmlElement, words: int) -> str:
    return " ".join(block.text_content().split()[:words]) + "\u2026"


def _without_trailing_heading(blocks: list[str]) -> str:
    while len(blocks) > 1 and re.match(r"<h\d", blocks[-1]):
        blocks.pop()
    return "".join(blocks)
