"""Measure how CareCast reads real pages: each page of a corpus wrapped as a feed item, read as a feed is, rendered.

Used by ``tests/corpus/test_corpus.py``; ``python -m tests.corpus.measure`` prints the figures of every page.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from pathlib import Path

import lxml.html

from carecast.config import RssSource, Settings
from carecast.document import Document, TextOptions, render_html, render_text, table_lines
from carecast.model import ContentItem
from carecast.sources import read_source

HERE = Path(__file__).parent
READABILITY = HERE / "readability"
_BLOCKS = ("p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "blockquote", "pre", "figcaption", "dd", "dt")
#: The full body as the newsletter's shows it: captions kept (in parentheses).
FULL_BODY = TextOptions(captions="parentheses")
#: A sentence shorter than this (in words) is a label, a date or a byline more than the article's words.
MIN_WORDS = 4


def pages(corpus: Path = READABILITY) -> list[Path]:
    """The corpus's page folders, each with ``source.html`` and ``expected.html``."""
    return sorted(path.parent for path in corpus.glob("*/source.html"))


def feed_of(page: Path, link: str) -> str:
    """An RSS feed whose one item carries the page's whole HTML as its ``content:encoded``."""
    metadata = json.loads((page / "expected-metadata.json").read_text(encoding="utf-8"))
    html = (page / "source.html").read_text(encoding="utf-8")
    return feed_of_html(page.name, metadata.get("title") or page.name, html, link)


def feed_of_html(name: str, title: str, html: str, link: str) -> str:
    """An RSS feed of one item, ``name``, whose ``content:encoded`` is ``html`` (a whole page)."""
    when = format_datetime(datetime(2026, 12, 1, 12, tzinfo=UTC))
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>{escape(name)}</title><link>http://fakehost/</link><description>corpus</description>"
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<guid>{escape(name)}</guid><pubDate>{when}</pubDate>"
        f"<content:encoded>{escape(html)}</content:encoded></item></channel></rss>"
    )


def read_page(page: Path, folder: Path, settings: Settings) -> ContentItem:
    """The page read as the one item of a feed (written in ``folder``) by CareCast's RSS source."""
    link = "http://fakehost/test/page.html"  # the address Readability's tests give every page
    return read_feed(page.name, feed_of(page, link), folder, settings)


def read_feed(name: str, feed: str, folder: Path, settings: Settings) -> ContentItem:
    """The one item of ``feed`` (written in ``folder`` as ``name``.xml) as CareCast's RSS source reads it."""
    path = folder / f"{name}.xml"
    path.write_text(feed, encoding="utf-8")
    config = RssSource.model_validate({"type": "rss", "url": str(path), "allow_private": True})
    result = read_source("corpus", config, settings)
    (item,) = result.items
    return item


def page_title(html: str) -> str:
    """The post's title as a CMS's feed would give it: the page's ``og:title``, else its ``<title>``, else its
    first ``h1`` (empty when it has none)."""
    root = lxml.html.fromstring(html.encode("utf-8"))
    candidates = [
        *root.xpath("//meta[@property='og:title']/@content"),
        *(element.text_content() for element in root.iter("title", "h1")),
    ]
    return next((" ".join(str(text).split()) for text in candidates if str(text).strip()), "")


def read_html_page(name: str, url: str, html: str, folder: Path, settings: Settings) -> ContentItem:
    """A whole page as the one item of an RSS feed, read by CareCast's RSS source: titled with the page's own title
    and linked to its address, as the site's own feed would carry it (a fake host when the address is none)."""
    link = url if url.startswith(("http://", "https://")) else "http://fakehost/page.html"
    return read_feed(name, feed_of_html(name, page_title(html) or name, html, link), folder, settings)


def expected_sentences(page: Path) -> list[str]:
    """The sentences of the article as Readability extracted it (``expected.html``), of at least MIN_WORDS."""
    root = lxml.html.fromstring((page / "expected.html").read_text(encoding="utf-8"))
    sentences = []
    for block in root.iter(*_BLOCKS):
        if any(child.tag in _BLOCKS for child in block.iterdescendants()):
            continue  # a container: its blocks are read one by one
        text = " ".join(block.text_content().split())
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            if len(sentence.split()) >= MIN_WORDS:
                sentences.append(sentence)
    return sentences


def comparable(text: str) -> str:
    """``text`` folded for comparison: letters and digits only, lowercased, compatibility-normalised."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(character for character in text if character.isalnum())


def kept_sentences(page: Path, item: ContentItem) -> tuple[int, tuple[str, ...]]:
    """How many sentences (of MIN_WORDS or more) the item's full-body text shows, and those of them not in
    Readability's article (``expected.html``): navigation, boilerplate, or text Readability leaves out."""
    expected = comparable(lxml.html.fromstring((page / "expected.html").read_text(encoding="utf-8")).text_content())
    shown = [
        sentence
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", render_text(item.body, FULL_BODY))
        if len(sentence.split()) >= MIN_WORDS
    ]
    return len(shown), tuple(sentence for sentence in shown if comparable(sentence) not in expected)


@dataclass(frozen=True)
class PageFigures:
    """What one page gave: sentences of the article found, tables kept, pictures with a real URL."""

    name: str
    sentences: int
    found: int
    tables: int
    tables_kept: int
    pictures: int
    real_pictures: int
    missing: tuple[str, ...]

    @property
    def recall(self) -> float:
        return self.found / self.sentences if self.sentences else 1.0


def measure(page: Path, item: ContentItem) -> PageFigures:
    """Compare the item's full-body renderings (text and HTML) with what Readability expects of the page."""
    document = item.body
    text = comparable(render_text(document, FULL_BODY))
    html = render_html(document)
    wanted = expected_sentences(page)
    missing = tuple(sentence for sentence in wanted if comparable(sentence) not in text)
    expected = lxml.html.fromstring((page / "expected.html").read_text(encoding="utf-8"))
    data_tables = [table for table in expected.iter("table") if _is_data_table(table)]
    kept = sum(1 for block in document.walk() if block.kind == "table")
    pictures = [match for match in re.findall(r'<img src="([^"]*)"', html)]
    real = [url for url in pictures if re.match(r"https?://[^/]+/", url) and not url.startswith("data:")]
    return PageFigures(
        name=page.name,
        sentences=len(wanted),
        found=len(wanted) - len(missing),
        tables=len(data_tables),
        tables_kept=min(kept, len(data_tables)),
        pictures=len(pictures),
        real_pictures=len(real),
        missing=missing,
    )


def _is_data_table(table: lxml.html.HtmlElement) -> bool:
    """A table of data (two columns or more, no table or paragraph inside), not one laying out the page."""
    rows = [[cell for cell in row if cell.tag in {"td", "th"}] for row in table.iter("tr")]
    nested = table.find(".//table") is not None or table.find(".//p") is not None
    return not nested and len(rows) >= 2 and max(len(row) for row in rows) >= 2


@dataclass(frozen=True)
class NewsletterFigures:
    """What the full newsletters of a corpus's pages showed: each page's tables (a table of its document) and those
    kept as a ``<table>`` in the email and one line per row in its text; the pictures the emails show and those with
    a real http(s) URL; the pages whose email scrolls sideways at 375 px with images on and with images off; the
    words of a table's cells a line break splits there (``page: word``)."""

    pages: int
    tables: int
    tables_kept: int
    pictures: int
    real_pictures: int
    wide_on: tuple[str, ...]
    wide_off: tuple[str, ...]
    not_real: tuple[str, ...]
    broken_words: tuple[str, ...]

    def summary(self, corpus: str) -> str:
        return (
            f"{corpus}: {self.pages} full newsletters; tables kept {self.tables_kept}/{self.tables}; pictures with "
            f"a real URL {self.real_pictures}/{self.pictures}; wider than {PHONE} px: {len(self.wide_on)} images "
            f"on, {len(self.wide_off)} images off; table words broken across lines: {len(self.broken_words)}"
        )

    def problems(self) -> list[str]:
        """What fails issue 18's checks: tables lost, pictures without a real URL, pages wider than the phone, a
        table's words broken."""
        return [
            *([f"tables kept {self.tables_kept}/{self.tables}"] if self.tables_kept < self.tables else []),
            *(f"not a real URL: {url}" for url in self.not_real),
            *(f"wider than {PHONE} px, images on: {page}" for page in self.wide_on),
            *(f"wider than {PHONE} px, images off: {page}" for page in self.wide_off),
            *(f"a table's word broken across lines: {word}" for word in self.broken_words),
        ]


def _innermost_tables(html: str) -> list[lxml.html.HtmlElement]:
    root = lxml.html.fromstring(html.encode("utf-8")) if html else None
    return [table for table in root.iter("table") if table.find(".//table") is None] if root is not None else []


#: The phone's width the newsletters must fit, in CSS pixels.
PHONE = 375


def check_newsletters(corpus: str, items: list[tuple[str, ContentItem]], settings: Settings, folder: Path) -> None:
    """:func:`newsletter_figures` as a test asserts it, the same for every corpus: skipped without Chromium, the
    figures printed under ``corpus``'s name, any page with a problem failing the test."""
    import pytest

    from tests.browser import chromium_path

    if chromium_path() is None:
        pytest.skip("needs chromium: apt-get install chromium")
    figures = newsletter_figures(items, settings, folder)
    print("\n" + figures.summary(corpus))
    assert figures.problems() == []


def newsletter_figures(items: list[tuple[str, ContentItem]], settings: Settings, folder: Path) -> NewsletterFigures:
    """Render each item as the one article of the full newsletter (as CareCast sends it: ``body: full``), check its
    tables and pictures, and lay every email out at 375 px in headless Chromium, images on and off (one run each).
    Raises RuntimeError when Chromium fails."""
    from carecast_channels.newsletter import NewsletterChannel
    from tests.browser import images_off, measure_all

    config = settings.channels["newsletter"].model_copy(update={"body": "full"})
    channel = NewsletterChannel("newsletter", config, settings)
    emails = [channel.render([item]) for _, item in items]
    tables = kept = 0
    pictures: list[str] = []
    for (_, item), email in zip(items, emails, strict=True):
        html, text = email.html or "", email.text
        # The email's innermost tables are the article's (MJML's own tables lay the page out around them).
        shown = [comparable(table.text_content()) for table in _innermost_tables(html)]
        for block in item.body.walk():
            if block.kind == "table":
                tables += 1
                cells = comparable(lxml.html.fromstring(render_html(Document((block,)))).text_content())
                rows = all(line in text for line in table_lines(block))
                kept += rows and any(cells in table for table in shown)
        pictures += re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    wide = {}
    broken: set[str] = set()
    for name, change in (("on", str), ("off", images_off)):
        (folder / name).mkdir(exist_ok=True)
        layouts = measure_all([change(email.html or "") for email in emails], PHONE, folder / name)
        wide[name] = tuple(page for (page, _), shown in zip(items, layouts, strict=True) if shown.scroll_width > PHONE)
        broken |= {
            f"{page}: {word}" for (page, _), shown in zip(items, layouts, strict=True) for word in shown.broken_words
        }
    real = [url for url in pictures if re.match(r"https?://[^/\s]+/", url)]
    return NewsletterFigures(
        pages=len(items),
        tables=tables,
        tables_kept=kept,
        pictures=len(pictures),
        real_pictures=len(real),
        wide_on=wide["on"],
        wide_off=wide["off"],
        not_real=tuple(url[:80] for url in pictures if url not in real),
        broken_words=tuple(sorted(broken)),
    )


if __name__ == "__main__":
    import sys
    import tempfile

    from carecast.config import read_yaml

    config = Path("config")
    settings = Settings.model_validate({**read_yaml(config / "carecast.yaml"), "channels": {}, "base_dir": config})
    with tempfile.TemporaryDirectory() as folder:
        total = found = shown = leaked = 0
        for page in pages():
            item = read_page(page, Path(folder), settings)
            figures, (kept, others) = measure(page, item), kept_sentences(page, item)
            total, found = total + figures.sentences, found + figures.found
            shown, leaked = shown + kept, leaked + len(others)
            print(
                f"{figures.name:32} {figures.recall:6.1%} {figures.tables_kept}/{figures.tables} tables "
                f"{figures.real_pictures}/{figures.pictures} pictures"
            )
            if "-v" in sys.argv:
                for sentence in figures.missing[:5]:
                    print("    missing:", sentence[:120])
                for sentence in others:
                    print("    not the article's:", sentence[:120])
        print(f"all: {found}/{total} = {found / total:.1%}; not the article's {leaked}/{shown} = {leaked / shown:.1%}")
