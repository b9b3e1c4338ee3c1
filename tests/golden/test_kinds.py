"""One small feed per kind of defect issue 18 lists (``kinds/NN-kind.xml``, written for this test), and what every
channel makes of it (``kinds/NN-kind.txt``, read by a person once, compared on every run).

Each expected file shows the items as read (title, link, picture, language), the full body as the text renderer
gives it, then every channel's draft of each item (the newsletter's of all of them), part by part, or its refusal.
Regenerate with ``CARECAST_UPDATE_GOLDEN=1 .venv/bin/pytest tests/golden/test_kinds.py`` and read the diff.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from carecast.channel import make_channel
from carecast.config import RssSource, Settings
from carecast.document import TextOptions, render_text
from carecast.errors import RenderError
from carecast.model import ContentItem
from carecast.practice import load_settings
from carecast.sources import read_source
from carecast_channels.newsletter import NewsletterChannel
from tests.conftest import all_channels_config
from tests.golden.test_golden import NEVER, compare

KINDS = Path(__file__).parent / "kinds"
FEEDS = sorted(path.stem for path in KINDS.glob("*.xml"))


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(all_channels_config(tmp_path_factory.mktemp("kinds")))


def render_every_channel(settings: Settings, items: list[ContentItem]) -> str:
    """The items as read, their full body, and every channel's drafts, as one readable text."""
    lines = ["== items"]
    for item in items:
        lines += [
            f"- {item.title}\n  url: {item.url}\n  image: {item.image_url} ({item.image_alt})",
            f"  language: {item.language}",
            *(f"  picture: {picture.url} ({picture.alt}) width {picture.width}" for picture in item.body.pictures()),
            *(f"  link: {url}" for url in _links(settings, item)),
            "  full body:",
            *(f"  | {line}" for line in render_text(item.body, TextOptions(captions="parentheses")).split("\n")),
        ]
    channels = [(instance, make_channel(settings, instance)) for instance in sorted(settings.channels)]
    for instance in ("x", "bluesky"):  # a long post as a thread, when the thread is short enough
        default = make_channel(settings, instance)
        config = settings.channels[instance].model_copy(update={"too_long": "thread"})
        channels.append((f"{instance} (too_long: thread)", type(default)(instance, config, settings)))
    for name, channel in channels:
        for batch in [items] if channel.digest else [[item] for item in items]:
            lines += ["", f"== {name}: {', '.join(item.title for item in batch)}"]
            try:
                draft = channel.render(batch)
            except RenderError as exc:
                lines.append(f"(refused: {exc.reason})")
                continue
            if draft.subject:
                lines.append(f"subject: {draft.subject}")
            for number, part in enumerate(draft.parts, start=1):
                lines += [f"-- part {number}", part]
    return "\n".join(lines) + "\n"


def _links(settings: Settings, item: ContentItem) -> list[str]:
    """Every link of the body as the newsletter's full body shows it (the author's ``utm_*`` replaced by ours)."""
    newsletter = make_channel(settings, "newsletter")
    assert isinstance(newsletter, NewsletterChannel)
    return re.findall(r'href="([^"]+)"', newsletter._email_safe(item, item.url or "", None))


def read_kind(settings: Settings, kind: str) -> list[ContentItem]:
    source = RssSource.model_validate({"type": "rss", "url": str(KINDS / f"{kind}.xml")})
    result = read_source(kind, source, settings)
    assert result.warnings == []
    return result.items


@pytest.mark.parametrize("kind", FEEDS)
def test_each_kind_of_defect_has_its_feed_and_every_channels_output(settings: Settings, kind: str) -> None:
    text = render_every_channel(settings, read_kind(settings, kind))
    compare(KINDS / f"{kind}.txt", text)
    for unwanted in NEVER:
        assert unwanted not in text, unwanted


def test_there_is_a_feed_for_each_of_the_fifteen_kinds() -> None:
    assert len(FEEDS) == 15
