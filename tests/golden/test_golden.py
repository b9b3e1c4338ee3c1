"""The golden set: feeds as WordPress, Squarespace, Wix, Blogger, Ghost and FeedBurner really emit them, and what
CareCast makes of each for every channel, checked in under ``expected/`` and compared on every run.

The expected files were read by a person (a reviewer reads a diff of them too). When a change is meant to alter
what patients receive, regenerate them with ``CARECAST_UPDATE_GOLDEN=1 .venv/bin/pytest tests/golden`` and read
the diff before committing it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from carecast.config import RssSource, Settings
from carecast.errors import RenderError
from carecast.model import ContentItem
from carecast.practice import load_settings
from carecast.sources import read_source
from carecast.text import sms_measure, x_measure
from carecast_channels.mastodon import MastodonChannel, mastodon_length
from carecast_channels.newsletter import NewsletterChannel
from carecast_channels.sms import SmsChannel
from carecast_channels.x import XChannel

HERE = Path(__file__).parent
CONFIG = HERE.parents[1] / "config" / "carecast.yaml"
#: The first six; then feeds written the way WordPress with Elementor, HubSpot and Substack emit them (issue 18):
#: lazy images, tables, embeds, buttons, footnotes, platform boilerplate, a Spanish post, phone numbers.
PLATFORMS = ["wordpress", "squarespace", "wix", "blogger", "ghost", "feedburner", "elementor", "hubspot", "substack"]
UPDATE = os.environ.get("CARECAST_UPDATE_GOLDEN") == "1"
#: What must never reach a reader, whatever the platform.
NEVER = [
    "appeared first on",
    "Continue reading",
    "s.w.org/images/core/emoji",
    "feeds.feedburner.com",
    "feedproxy.google.com",
    "Share this",
    "favicon",
    "Related posts",
    "Subscribe",
    "Suscríbete",
    "Leave a comment",
    "Thanks for reading",
    "data:image",
    "utm_source=hubspot",
    "utm_source=wordpress",
    "utm_source=substack",
    "2010;40(1)",
    "Wall slide310",
]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(CONFIG)


def read_feed(settings: Settings, platform: str) -> list[ContentItem]:
    source = RssSource.model_validate({"type": "rss", "url": str(HERE / "feeds" / f"{platform}.xml")})
    result = read_source(platform, source, settings)
    assert result.warnings == []
    return result.items


def render_all(settings: Settings, items: list[ContentItem]) -> tuple[str, str]:
    """Every channel's output for ``items`` as one readable text, and the newsletter's HTML."""
    channels = settings.channels
    newsletter = NewsletterChannel("newsletter", channels["newsletter"], settings)
    x = XChannel("x", channels["x"], settings)
    mastodon = MastodonChannel("mastodon", channels["mastodon"], settings)
    sms = SmsChannel("sms", channels["sms"], settings)
    lines = ["== items"]
    lines += [
        f"- {i.id}\n  title: {i.title}\n  url: {i.url}\n  image: {i.image_url} ({i.image_alt})"
        f"\n  language: {i.language}"
        for i in items
    ]
    digest = newsletter.render(items)
    lines += ["", f"== newsletter: {digest.subject}", f"preheader: {digest.preheader}", "", digest.text]
    for item in items:
        for channel, measure in (
            (x, lambda part: f"{x_measure(part).weighted_length} weighted"),
            (mastodon, lambda part: f"{mastodon_length(part)} characters"),
            (sms, lambda part: f"{sms_measure(part).encoding}, {sms_measure(part).segments} segments"),
        ):
            lines += ["", f"== {channel.name}: {item.id}"]
            try:
                draft = channel.render([item])
            except RenderError as exc:
                lines.append(f"(refused: {exc.reason})")
                continue
            for number, part in enumerate(draft.parts, start=1):
                lines += [f"-- part {number} ({measure(part)})", part]
            lines += [f"-- note: {note}" for note in draft.measures.get("notes", [])]
    return "\n".join(lines) + "\n", digest.html or ""


def compare(path: Path, actual: str) -> None:
    if UPDATE or not path.exists():
        path.write_text(actual, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"{path.name} was missing and is now written: read it, then commit it")
    assert actual == path.read_text(encoding="utf-8"), (
        f"{path.name} changed; if that is meant, CARECAST_UPDATE_GOLDEN=1 and read the diff"
    )


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_channels_output_matches_the_golden_files(settings: Settings, platform: str) -> None:
    text, page = render_all(settings, read_feed(settings, platform))
    compare(HERE / "expected" / f"{platform}.txt", text)
    compare(HERE / "expected" / f"{platform}.newsletter.html", page)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_no_boilerplate_tracker_or_emoji_image_reaches_any_channel(settings: Settings, platform: str) -> None:
    text, page = render_all(settings, read_feed(settings, platform))
    for unwanted in NEVER:
        assert unwanted not in text and unwanted not in page, unwanted


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_item_has_a_photo_or_none_and_no_url_twice(settings: Settings, platform: str) -> None:
    for item in read_feed(settings, platform):
        if item.image_url:
            assert not re.search(r"emoji|~r/|/s72-c/|favicon|\.gif", item.image_url), item.image_url
    text, _ = render_all(settings, read_feed(settings, platform))
    for block in text.split("\n== ")[2:]:
        urls = re.findall(r"https?://\S+", block.split("\n", 1)[1])  # not the item's id (a guid may be its URL)
        assert len(urls) == len(set(urls)), block
