"""Make untrusted HTML safe for templates, and turn it into plain text.

Every piece of HTML a source yields (a feed's ``content:encoded``, a Markdown post's body) goes through
:func:`sanitize_html` before any template sees it: only a small set of formatting tags survives, links and images
keep only absolute http(s) URLs, and links get ``rel="noopener noreferrer nofollow"``. :func:`html_to_text` gives
the plain-text form (for SMS, X, the ``text/plain`` part of a newsletter); :func:`first_image` finds the picture a
channel may show beside the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import nh3
from inscriptis import get_text

ALLOWED_TAGS = frozenset({"p", "a", "strong", "em", "ul", "ol", "li", "h2", "h3", "h4", "blockquote", "img", "br"})
ALLOWED_ATTRIBUTES = {"a": {"href"}, "img": {"src", "alt"}}
LINK_REL = "noopener noreferrer nofollow"
_URL_ATTRIBUTES = frozenset({("a", "href"), ("img", "src")})
_BLANK_LINES = re.compile(r"\n{3,}")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Query parameters that say who shared a link, not what it points to (besides every ``utm_*``).
_TRACKING_PARAMETERS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
    }
)


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


def normalise_link(url: str) -> str:
    """``url`` without what changes when the same post moves or is shared: the identity of a post by its link.

    The scheme becomes https (a site moving to https keeps its posts), the host is lowercased without ``www.``,
    default ports, the trailing slash, the fragment and tracking parameters (``utm_*``, ``fbclid``, ``gclid`` ...)
    go, and the other parameters are sorted. Raises ValueError on a URL that cannot be split (e.g. a port that is not
    a number).
    """
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").removeprefix("www.")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        netloc = f"{netloc}:{parts.port}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode(sorted((key, value) for key, value in pairs if not _is_tracking(key)))
    return urlunsplit(("https", netloc, parts.path.rstrip("/"), query, ""))


def _is_tracking(parameter: str) -> bool:
    name = parameter.lower()
    return name.startswith("utm_") or name in _TRACKING_PARAMETERS


def sanitize_html(html: str, *, base_url: str | None = None) -> str:
    """Keep only safe formatting tags; links and images keep absolute http(s) URLs only.

    Relative URLs are resolved against ``base_url`` (the post's own address); without one, or when the result is
    not http(s) (``javascript:``, ``data:``), the attribute is dropped. Never raises on malformed HTML.
    """

    def keep_url(tag: str, attribute: str, value: str) -> str | None:
        if (tag, attribute) in _URL_ATTRIBUTES:
            return absolute_http_url(value, base_url)
        return value

    # script and style are dropped with their content; every other unknown tag keeps its text.
    cleaner = nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=keep_url,
        link_rel=LINK_REL,
        url_schemes={"http", "https"},
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
    url: str
    alt: str | None


class _FirstImage(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: Image | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        src = values.get("src")
        if self.found is None and tag == "img" and src:
            self.found = Image(url=src, alt=values.get("alt") or None)


def first_image(html: str) -> Image | None:
    """The first ``<img>`` with a ``src`` in (sanitised) HTML, with its alt text, or None."""
    parser = _FirstImage()
    parser.feed(html)
    parser.close()
    return parser.found
