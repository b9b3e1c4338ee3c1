"""The RSS/Atom source: stable ids, edits, conditional GET against a real local server, bad feeds, sanitising."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carecast.config import RssSource, Settings, read_yaml
from carecast.errors import SourceError
from carecast.html import clean_body, html_to_text, normalise_link, sanitize_html
from carecast.sources import SourceResult, Validators, read_source
from tests.conftest import SAMPLE_CONFIG
from tests.providers import LocalHttpServer, RecordedRequest, Reply

FEEDS = Path(__file__).parent / "feeds"
SETTINGS = Settings.model_validate(
    {**read_yaml(SAMPLE_CONFIG / "carecast.yaml"), "channels": {}, "base_dir": SAMPLE_CONFIG}
)


def read(url: str | Path, **options: object) -> SourceResult:
    """The source ``blog`` at ``url``; the local servers of these tests are on the loopback address."""
    config = RssSource.model_validate({"type": "rss", "url": str(url), "allow_private": True, **options})
    return read_source("blog", config, SETTINGS)


def test_sample_feed_reads_every_post_newest_first_sanitised() -> None:
    result = read("samples/oakview-blog.xml")
    assert result.warnings == []
    assert result.validators is None and not result.not_modified
    assert len(result.items) == 7
    assert [item.published for item in result.items] == sorted((item.published for item in result.items), reverse=True)
    first = result.items[0]
    assert first.id == "rss:blog:oakview-blog-2026-11-24-desk-ergonomics"
    assert first.published == datetime(2026, 11, 24, 15, tzinfo=UTC)
    assert first.image_url == "https://www.oakviewpt.com/images/blog/desk-setup.jpg"
    assert first.image_alt and first.image_alt.startswith("A laptop raised")
    assert first.tags == ("Ergonomics", "Neck pain")
    assert "Screen at eye level." in first.summary_text and "<" not in first.summary_text
    running = next(item for item in result.items if "Running" in item.title)
    assert "<script" not in running.summary_html and "tracker" not in running.summary_html
    assert "onclick" not in running.summary_html
    assert 'rel="noopener noreferrer nofollow"' in running.summary_html


def test_max_items_keeps_the_newest() -> None:
    result = read("samples/oakview-blog.xml", max_items=2)
    assert [item.id.rsplit("-", 1)[-1] for item in result.items] == ["ergonomics", "balance"]


def test_ids_and_hashes_are_stable_across_polls_and_an_edit_changes_only_the_hash(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    original = (SAMPLE_CONFIG / "samples/oakview-blog.xml").read_text(encoding="utf-8")
    feed.write_text(original, encoding="utf-8")
    first, second = read(feed), read(feed)
    assert [(i.id, i.content_hash) for i in first.items] == [(i.id, i.content_hash) for i in second.items]

    feed.write_text(original.replace("The good news: small changes add up.", "Small changes add up."), "utf-8")
    edited = read(feed)
    assert [i.id for i in edited.items] == [i.id for i in first.items]
    changed = [i.id for i, j in zip(first.items, edited.items, strict=True) if i.content_hash != j.content_hash]
    assert changed == ["rss:blog:oakview-blog-2026-11-24-desk-ergonomics"]


def test_id_falls_back_from_guid_to_normalised_link_to_a_hash_of_title_and_date() -> None:
    items = {item.title: item for item in read(FEEDS / "fallback-ids.xml").items}
    assert items["With a guid"].id == "rss:blog:post-1"
    link_only = items["Only a link"]
    assert link_only.id == "rss:blog:https://clinic.example/blog/two?page=2"
    # The feed's own tracking parameters do not pass for a channel's; the rest of the link stays as written.
    assert link_only.url == "https://Clinic.Example:443/blog/two/?page=2#comments"
    assert link_only.published == datetime(2026, 11, 2, 12, tzinfo=UTC)  # no date of its own: the feed's
    neither = items["Neither guid nor link"]
    assert neither.id.startswith("rss:blog:hash:") and neither.url is None
    assert neither.id == read(FEEDS / "fallback-ids.xml").items[-1].id


@pytest.mark.parametrize(
    ("link", "normalised"),
    [
        ("HTTPS://WWW.Clinic.Example:443/Blog/Post/", "https://clinic.example/Blog/Post"),
        ("http://clinic.example:80/a?utm_source=x&UTM_Medium=y&id=3#top", "https://clinic.example/a?id=3"),
        (
            "http://www.clinic.example/a?page=2&fbclid=z&gclid=y&mc_cid=x&lang=en",
            "https://clinic.example/a?lang=en&page=2",
        ),
        ("http://clinic.example:8080/a/", "https://clinic.example:8080/a"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
        ("https://clinic.example/", "https://clinic.example"),
    ],
)
def test_normalise_link(link: str, normalised: str) -> None:
    assert normalise_link(link) == normalised


def test_images_come_from_media_content_enclosures_or_the_first_img() -> None:
    items = {item.title: item for item in read(FEEDS / "fallback-ids.xml").items}
    assert items["With a guid"].image_url == "https://clinic.example/images/one.jpg"
    assert items["Only a link"].image_url == "https://cdn.clinic.example/two.png"
    assert items["Neither guid nor link"].image_url is None


def test_hostile_html_is_sanitised_and_relative_urls_made_absolute() -> None:
    hostile, plain = read(FEEDS / "hostile.atom").items
    assert hostile.title == "Bold & title"
    assert hostile.published == datetime(2026, 11, 2, 11, tzinfo=UTC)
    html = hostile.summary_html
    for banned in ("<script", "alert", "onclick", "javascript:", "<iframe", "evil.example"):
        assert banned not in html
    assert '<a href="https://clinic.example/ok" rel="noopener noreferrer nofollow">ok</a>' in html
    assert hostile.image_url == "https://clinic.example/posts/pics/x.jpg" and hostile.image_alt == "X-ray"
    assert plain.summary_html == "<p>1 &lt; 2 &amp;&amp; 3 &gt; 2</p>"
    assert plain.summary_text == "1 < 2 && 3 > 2"


def test_sanitize_html_keeps_only_safe_tags_and_http_urls() -> None:
    dirty = (
        '<h1>Big</h1><h2 style="color:red">Head</h2><p>Hi <a href="/rel">rel</a> <a href="data:text/html,x">d</a>'
        '<img src="https://x.example/a.png" alt="A" onerror="x()"><img src="javascript:x()"></p>'
        "<style>p{}</style><script>evil()</script><table><tr><td>cell</td></tr></table>"
    )
    clean = sanitize_html(dirty, base_url="https://clinic.example/blog/post")
    assert clean == (
        'Big<h2>Head</h2><p>Hi <a href="https://clinic.example/rel" rel="noopener noreferrer nofollow">rel</a> '
        '<a rel="noopener noreferrer nofollow">d</a><img src="https://x.example/a.png" alt="A"><img></p>cell'
    )
    assert 'href="/rel"' not in sanitize_html(dirty)  # without a base, relative URLs are dropped
    assert clean_body(clean).images and not clean_body("<p>no picture</p>").images


def test_html_to_text_keeps_paragraphs_and_lists() -> None:
    assert html_to_text("<p>One &amp; two</p><ul><li>a</li><li>b</li></ul><p>End</p>") == (
        "One & two\n\n  * a\n  * b\n\nEnd"
    )
    assert html_to_text("") == ""


def test_malformed_feed_keeps_its_readable_entries_with_a_warning() -> None:
    result = read(FEEDS / "malformed.xml")
    assert [item.id for item in result.items] == ["rss:blog:m-2", "rss:blog:m-1"]
    assert result.items[1].title == "First post — still readable"
    assert any("malformed" in warning and "undefined entity" in warning for warning in result.warnings)
    assert any(warning.startswith("entry 3 skipped") for warning in result.warnings)


def test_one_odd_entry_is_skipped_with_a_warning() -> None:
    result = read(FEEDS / "odd-entry.xml")
    assert [item.id for item in result.items] == ["rss:blog:ok-1"]
    assert result.warnings == ["entry 2 skipped: ValueError: Port out of range 0-65535"]


@pytest.mark.parametrize("content", [b"", b"<html><body><p>not a feed</p></body></html>", b"\x00\xff garbage"])
def test_nothing_readable_is_a_source_error(tmp_path: Path, content: bytes) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(content)
    with pytest.raises(SourceError) as caught:
        read(feed)
    assert caught.value.source == "blog"


def test_a_web_page_and_a_missing_file_are_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a readable feed"):
        read(FEEDS / "not-a-feed.html")
    with pytest.raises(SourceError, match="cannot read"):
        read(tmp_path / "missing.xml")


# --- over HTTP, against a real server on 127.0.0.1 ---------------------------------------------------------------

ETAG = '"v1"'
LAST_MODIFIED = "Tue, 24 Nov 2026 15:00:00 GMT"


class FeedServer(LocalHttpServer):
    """Serves the sample feed at /feed.xml with validators, and a 500 at /broken."""

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path == "/broken":
            return Reply(500, "internal error")
        if request.headers.get("If-None-Match") == ETAG:
            return Reply(304)  # without validators: the ones sent stay valid
        body = (SAMPLE_CONFIG / "samples/oakview-blog.xml").read_bytes()
        headers = {"ETag": ETAG, "Last-Modified": LAST_MODIFIED, "Content-Type": "application/rss+xml; charset=utf-8"}
        return Reply(200, body, headers)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def test_conditional_get_keeps_validators_and_a_304_costs_nothing(server: FeedServer) -> None:
    first = read(f"{server.url}/feed.xml")
    assert len(first.items) == 7 and not first.not_modified
    assert first.validators == Validators(etag=ETAG, last_modified=LAST_MODIFIED)

    config = RssSource.model_validate({"type": "rss", "url": f"{server.url}/feed.xml", "allow_private": True})
    second = read_source("blog", config, SETTINGS, validators=first.validators)
    assert second.not_modified and second.items == []
    assert second.validators == first.validators
    sent = server.requests_to("GET", "/feed.xml")[-1].headers
    assert sent["If-None-Match"] == ETAG and sent["If-Modified-Since"] == LAST_MODIFIED
    assert sent["User-Agent"].startswith("CareCast/")


def test_http_error_timeout_and_unreachable_are_source_errors(server: FeedServer) -> None:
    with pytest.raises(SourceError, match="HTTP 500"):
        read(f"{server.url}/broken")
    with socket.socket() as silent:  # the kernel accepts the connection; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(SourceError, match=r"did not answer within 0\.2 s"):
            read(f"http://127.0.0.1:{silent.getsockname()[1]}/feed.xml", timeout=0.2)
    with socket.socket() as closed:  # bound, not listening: the connection is refused
        closed.bind(("127.0.0.1", 0))
        with pytest.raises(SourceError, match="cannot reach"):
            read(f"http://127.0.0.1:{closed.getsockname()[1]}/feed.xml", timeout=2)
