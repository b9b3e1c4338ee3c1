"""Read an RSS or Atom feed into content items.

The feed is fetched with a conditional GET (an unchanged feed costs one 304) through :func:`carecast.fetch.fetch`,
which bounds the whole fetch by the source's ``timeout``, its body by ``max_bytes`` and its addresses to public ones
(unless ``allow_private``), or read from a file, and parsed with ``feedparser``. Feeds in the wild are often
broken: a malformed feed keeps what feedparser could read and says why in the warnings, and one odd entry is
skipped with a warning instead of costing the others.

A poll reads only what is new or changed: each entry's raw bytes (found by expat, see :func:`entry_spans`) are
fingerprinted with what reads them (the source, the feed's link and address, the strip patterns), and an entry whose
fingerprint the ledger holds (the ``known`` callback) is cut out of the bytes before feedparser parses them, so it
is not parsed, cleaned, sanitised or stored again. A feed that is not well-formed XML is read whole.

An item's id is stable across polls, edits and moves: ``rss:<source>:`` plus the guid, else the normalised link
(:func:`carecast.html.normalise_link`: a post moved to https, to or from ``www.``, or given tracking parameters keeps
its id), else a hash of title and date. Its content hash covers title, content and link, so an edit changes the hash,
not the id.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import re
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from html import escape
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit
from xml.parsers import expat

import feedparser

from carecast.config import RssSource, Settings
from carecast.errors import FetchError, SourceError
from carecast.fetch import Fetched, fetch
from carecast.html import (
    Image,
    absolute_http_url,
    choose_image,
    clean_body,
    declared_size,
    normalise_link,
    one_line,
)
from carecast.language import item_language, primary
from carecast.model import ContentItem, content_hash, now_utc
from carecast.sources.result import KnownEntries, SourceResult, Validators
from carecast.tracking import without_tracking

USER_AGENT = "CareCast/0.1 (feed reader)"
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
_TITLE_FROM_TEXT = 100
_URL = re.compile(r"https?://\S+")
#: feedparser's bozo exceptions that do not mean the document was broken (it was read in full).
_HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
#: Part of every entry fingerprint: changed when reading an entry gives another item than before (cleaning rules),
#: so the entries stored already are read again once.
READER_VERSION = 2  # 2: items keep a document of their body and their language


def read_rss(
    name: str,
    config: RssSource,
    settings: Settings,
    *,
    validators: Validators | None = None,
    known: KnownEntries | None = None,
) -> SourceResult:
    """Fetch (or read) and parse the feed of source ``name``; the newest ``config.max_items`` entries, of which
    those ``known`` holds are passed over (see :func:`parse_feed`).

    Raises SourceError when the feed is unreachable, does not answer in full within ``config.timeout``, is larger
    than ``config.max_bytes``, redirects to a scheme other than http(s) or (unless ``allow_private``) connects to a
    non-public address, answers an HTTP error, cannot be read from its file, or has nothing readable in it.
    """
    if urlsplit(config.url).scheme in {"http", "https"}:
        response = _fetch(name, config, validators)
        fresh = Validators(etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified"))
        if response.status == 304:
            # A 304 may leave out the validators it matched; they stay valid.
            kept = Validators(
                etag=fresh.etag or (validators.etag if validators else None),
                last_modified=fresh.last_modified or (validators.last_modified if validators else None),
            )
            return SourceResult(items=[], validators=kept, not_modified=True)
        new_validators = fresh if fresh.etag or fresh.last_modified else None
        headers = {key.lower(): value for key, value in response.headers.items()}
        # feedparser resolves relative links against content-location; the bytes alone do not say where they were.
        headers["content-location"] = urljoin(response.url, headers.get("content-location", ""))
        body = response.body
    else:
        body, headers, new_validators = _read_file(name, settings.path(config.url), config.max_bytes), {}, None
    result = parse_feed(name, body, headers, max_items=config.max_items, strip=config.strip_patterns, known=known)
    return replace(result, validators=new_validators)


def _fetch(name: str, config: RssSource, validators: Validators | None) -> Fetched:
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    if validators and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    try:
        response = fetch(
            config.url,
            headers=headers,
            deadline=config.timeout,
            max_bytes=config.max_bytes,
            allow_private=config.allow_private,
        )
    except FetchError as exc:
        raise SourceError(name, exc.reason) from exc
    if response.status >= 400:
        raise SourceError(name, f"{response.url} answered HTTP {response.status} {response.reason}")
    return response


def _read_file(name: str, path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as file:
            body = file.read(max_bytes + 1)
    except OSError as exc:
        raise SourceError(name, f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(body) > max_bytes:
        raise SourceError(name, f"{path} is larger than {max_bytes} bytes")
    return body


def parse_feed(
    name: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    max_items: int,
    strip: Sequence[re.Pattern[str]] = (),
    known: KnownEntries | None = None,
) -> SourceResult:
    """Items (newest first, of the newest ``max_items`` entries), their entries' fingerprints and warnings from
    the bytes of a feed.

    ``headers`` are the HTTP response headers with lowercase names (they decide the encoding); ``strip`` are the
    source's own boilerplate patterns (a block of a body matching one is removed); ``known`` tells which entry
    fingerprints the ledger holds: those entries are not even parsed, only counted (``unchanged``). Raises
    SourceError when feedparser fails or the feed has no entries and is malformed or not a feed at all.
    """
    spans = entry_spans(body)
    if spans is None:  # not well-formed (feedparser reads what it can) or not split safely: every entry is read
        return _read_entries(name, _parse(name, body, headers), max_items, strip)
    # The feed without its entries says what every entry is read against (its link): part of their fingerprints.
    skeleton = _parse(name, _without(body, spans), headers)
    prints = _Fingerprints(name, _feed_link(skeleton), strip, headers.get("content-location", ""))
    fingerprints = [prints.of(body[start:end]) for start, end in spans]
    stored = known(fingerprints) if known is not None and fingerprints else {}
    new = [number for number, fingerprint in enumerate(fingerprints) if fingerprint not in stored]
    parsed = _parse(
        name, _without(body, [span for span, f in zip(spans, fingerprints, strict=True) if f in stored]), headers
    )
    if len(parsed.entries) != len(new):  # feedparser saw the entries otherwise: it reads the whole feed
        return _read_entries(name, _parse(name, body, headers), max_items, strip)
    entries: list[_Entry] = [
        _Entry(number + 1, stored[fingerprint], fingerprint)
        for number, fingerprint in enumerate(fingerprints)
        if fingerprint in stored
    ]
    entries += [
        _Entry(number + 1, None, fingerprints[number], entry) for number, entry in zip(new, parsed.entries, strict=True)
    ]
    return _read_entries(name, parsed, max_items, strip, sorted(entries, key=lambda entry: entry.number))


class _Entry(NamedTuple):
    """One entry of a feed: its place, and either the date of the item stored from it or what feedparser read."""

    number: int
    stored: datetime | None
    fingerprint: str | None = None
    raw: Mapping[str, Any] = MappingProxyType({})


def _read_entries(
    name: str,
    parsed: Mapping[str, Any],
    max_items: int,
    strip: Sequence[re.Pattern[str]],
    entries: Sequence[_Entry] | None = None,
) -> SourceResult:
    """The items of the newest ``max_items`` of ``entries`` (default: every entry ``parsed`` has, unfingerprinted)."""
    warnings: list[str] = []
    if parsed.get("bozo"):
        problem = parsed.get("bozo_exception")
        reason = f"{type(problem).__name__}: {problem}"
        if not parsed["entries"] and not entries and not isinstance(problem, _HARMLESS):
            raise SourceError(name, f"not a readable feed ({reason})")
        warnings.append(f"the feed is malformed; read what could be read ({reason})")
    if not parsed["entries"] and not entries and not parsed.get("version"):
        raise SourceError(name, "not an RSS or Atom feed")
    if entries is None:
        entries = [_Entry(number, None, raw=entry) for number, entry in enumerate(parsed["entries"], start=1)]
    feed = parsed.get("feed", {})
    feed_date = _utc(feed.get("published_parsed")) or _utc(feed.get("updated_parsed")) or now_utc()
    feed_link = _feed_link(parsed)
    # The newest max_items entries are cut before any is sanitised: a feed of 2,000 costs what it keeps.
    newest = sorted(entries, key=lambda entry: entry.stored or _published(entry.raw, feed_date), reverse=True)
    items: list[ContentItem] = []
    fingerprints: dict[str, str] = {}
    unchanged = 0
    for entry in newest:
        if len(items) + unchanged == max_items:
            break
        if entry.stored is not None:
            unchanged += 1  # as it was when stored: not parsed, cleaned, sanitised or written again
            continue
        try:
            item = _item(name, entry.raw, feed_date, feed_link, strip, feed.get("language"))
        except Exception as exc:  # one odd entry must not cost the others
            warnings.append(f"entry {entry.number} skipped: {type(exc).__name__}: {exc}")
            continue
        items.append(item)
        if entry.fingerprint is not None:
            fingerprints[item.id] = entry.fingerprint
    return SourceResult(items=items, warnings=warnings, fingerprints=fingerprints, unchanged=unchanged)


def _parse(name: str, body: bytes, headers: Mapping[str, str]) -> Any:
    try:
        # A stream, not bytes: given bytes, feedparser first tries to open them as a file name. Its own sanitiser
        # and URI resolver are off: _item sanitises (nh3) and resolves links itself, and only for the entries kept.
        return feedparser.parse(
            io.BytesIO(body), response_headers=dict(headers), sanitize_html=False, resolve_relative_uris=False
        )
    except Exception as exc:  # feedparser has many internal failure modes; none may escape as such
        raise SourceError(name, f"cannot parse the feed: {exc!r}") from exc


def _feed_link(parsed: Mapping[str, Any]) -> str | None:
    return absolute_http_url(parsed.get("feed", {}).get("link") or "")


def entry_spans(body: bytes) -> list[tuple[int, int]] | None:
    """Where each entry (an RSS ``item``, an Atom ``entry``, outermost only) starts and ends in the bytes of a feed.

    None when the bytes are not well-formed XML, not in an encoding expat reads where ``>`` is one byte (UTF-16,
    Big5), or have an empty entry (``<item/>``): such a feed is read whole, as feedparser sees it.
    """
    if body.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00")) or b"\x00" in body[:4]:
        return None
    parser = expat.ParserCreate()
    parser.ordered_attributes = True  # a list is cheaper to make than a dict, and the attributes are not read
    spans: list[tuple[int, int]] = []
    depth = start = 0

    def started(tag: str, _attributes: object) -> None:
        nonlocal depth, start
        if depth:
            depth += 1
        elif tag.rpartition(":")[2] in {"item", "entry"}:
            depth, start = 1, parser.CurrentByteIndex

    def ended(_tag: str) -> None:
        nonlocal depth
        if depth:
            depth -= 1
            if not depth:
                # At the end tag's "<" (or, for an empty element, at its start tag: refused below).
                spans.append((start, body.find(b">", parser.CurrentByteIndex) + 1))

    parser.StartElementHandler = started
    parser.EndElementHandler = ended
    try:
        parser.Parse(body, True)
    except Exception:  # not well-formed, or an encoding expat refuses (Big5, a bogus name): read whole
        return None
    if any(body[end - 2 : end] == b"/>" or body[start:end].count(b"<") < 2 for start, end in spans):
        return None
    return spans


def _without(body: bytes, spans: Sequence[tuple[int, int]]) -> bytes:
    """``body`` without the bytes of ``spans`` (in order, not overlapping)."""
    kept, position = [], 0
    for start, end in spans:
        kept.append(body[position:start])
        position = end
    kept.append(body[position:])
    return b"".join(kept)


@dataclass(frozen=True)
class _Fingerprints:
    """Fingerprints of a feed's entries: the raw bytes of each, with what reads it besides (the source, the feed's
    link and address, the strip patterns, :data:`READER_VERSION`). Equal fingerprints make equal items."""

    source: str
    feed_link: str | None
    strip: Sequence[re.Pattern[str]]
    location: str

    @cached_property
    def _context(self) -> bytes:
        strip = [pattern.pattern for pattern in self.strip]
        return json.dumps([READER_VERSION, self.source, self.feed_link, self.location, strip]).encode() + b"\x00"

    def of(self, raw: bytes) -> str:
        return hashlib.sha256(self._context + raw).hexdigest()[:32]


def _item(
    source: str,
    entry: Mapping[str, Any],
    feed_date: datetime,
    feed_link: str | None,
    strip: Sequence[re.Pattern[str]] = (),
    feed_language: str | None = None,
) -> ContentItem:
    # FeedBurner wraps each link in a feedproxy redirect (dead since Google shut it); its origLink is the post.
    link = absolute_http_url(entry.get("feedburner_origlink") or entry.get("link") or "", feed_link)
    base = link or feed_link
    feed_title = _title(entry)
    # Cleaned before anything else sees it: boilerplate, junk images and a repeated title never reach a channel.
    body = clean_body(_entry_html(entry), base_url=base, title=feed_title, strip=strip)
    # An untitled post (Blogger, Mastodon-style microposts) is titled by its opening words, never by a link.
    words = _URL.sub("", body.text)
    title = feed_title or textwrap.shorten(words, _TITLE_FROM_TEXT, placeholder="…") or link
    if not title:
        raise ValueError("it has no title, no content and no link")
    published = _published(entry, feed_date)
    # Image selection is one step of ingest: every channel shows the same picture.
    image = choose_image(_feed_images(entry, base), body.images)
    key, from_link = _stable_key(entry, link, title)
    return ContentItem(
        id=f"rss:{source}:{key}",
        id_from_link=from_link,
        source=source,
        kind="post",
        title=title,
        url=without_tracking(link) if link else None,
        summary_html=body.html,
        summary_text=body.text,
        document=body.document,
        language=item_language(_entry_language(entry, feed_language), f"{feed_title}. {body.text}", feed_language),
        published=published,
        content_hash=content_hash(title, body.html, link or ""),
        image_url=image.url if image else None,
        image_alt=image.alt if image else None,
        tags=tuple(term for tag in entry.get("tags", []) if (term := (tag.get("term") or "").strip())),
    )


def _published(entry: Mapping[str, Any], feed_date: datetime) -> datetime:
    return _utc(entry.get("published_parsed")) or _utc(entry.get("updated_parsed")) or feed_date


def _stable_key(entry: Mapping[str, Any], link: str | None, title: str) -> tuple[str, bool]:
    """The entry's key within its source, and whether it was made from the link."""
    guid = (entry.get("id") or "").strip()
    if guid:
        return guid, False
    if link:
        return normalise_link(link), True
    # The entry's own date string, never the fallback "now", which would change the id on every poll.
    stamp = entry.get("published") or entry.get("updated") or ""
    return "hash:" + content_hash(title, stamp), False


def _title(entry: Mapping[str, Any]) -> str:
    title = entry.get("title") or ""
    kind = (entry.get("title_detail") or {}).get("type") or ""
    return one_line(title) if "html" in kind else " ".join(title.split())


def _entry_language(entry: Mapping[str, Any], feed_language: str | None) -> str | None:
    """What the entry itself declares (``dc:language``, ``xml:lang`` on it or its content), not what it inherits."""
    declared = [entry.get("language"), *(detail.get("language") for detail in entry.get("content", []))]
    declared.append((entry.get("summary_detail") or {}).get("language"))
    return next((code for code in declared if code and primary(code) != primary(feed_language)), None)


def _entry_html(entry: Mapping[str, Any]) -> str:
    # content:encoded (RSS) and <content> (Atom) arrive as entry.content; the summary is the fallback.
    for detail in (*entry.get("content", []), entry.get("summary_detail")):
        if detail and (detail.get("value") or "").strip():
            value: str = detail["value"]
            return value if "html" in (detail.get("type") or "html") else f"<p>{escape(value)}</p>"
    return ""


def _feed_images(entry: Mapping[str, Any], base: str | None) -> list[Image]:
    """The images the feed itself names for ``entry``: ``media:content``, ``media:thumbnail``, image enclosures."""
    media = [
        (media.get("url"), media)
        for media in entry.get("media_content", [])
        if media.get("medium") == "image" or _is_image_type(media)
    ]
    media += [(thumbnail.get("url"), thumbnail) for thumbnail in entry.get("media_thumbnail", [])]
    media += [
        (enclosure.get("href"), enclosure) for enclosure in entry.get("enclosures", []) if _is_image_type(enclosure)
    ]
    images = []
    for candidate, details in media:
        url = absolute_http_url(candidate or "", base)
        if url:
            size = (declared_size(details.get("width")), declared_size(details.get("height")))
            images.append(Image(url=url, width=size[0], height=size[1]))
    return images


def _is_image_type(link: Mapping[str, Any]) -> bool:
    return str(link.get("type") or "").startswith("image/")


def _utc(moment: time.struct_time | None) -> datetime | None:
    """A UTC datetime from feedparser's UTC struct_time, or None when absent or out of range."""
    if moment is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(moment), UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return None
