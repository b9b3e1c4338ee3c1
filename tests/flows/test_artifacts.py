"""The draft preview staff approve from: what goes out beside the text is shown with it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from carecast.ledger.drafts import StoredDraft
from carecast.model import Draft
from carecast.practice import load_settings
from carecast_flows.artifacts import draft_markdown
from tests.conftest import write_config


def test_a_preview_shows_the_link_card_and_the_image_beside_the_text(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path))
    draft = Draft(
        channel="mastodon",
        item_ids=("rss:blog:desk",),
        parts=("Five stretches for desk workers",),
        link="https://www.oakviewpt.com/blog/desk?utm_source=mastodon",
        image_url="https://www.oakviewpt.com/images/desk.jpg",
        image_alt="A laptop on a stand",
    )
    stored = StoredDraft(7, "mastodon", "default", "pending", draft, None, datetime(2026, 11, 2, tzinfo=UTC))

    preview = draft_markdown(settings, stored, "Five stretches", None)

    assert "```text\nFive stretches for desk workers\n```" in preview
    assert "**Link:** https://www.oakviewpt.com/blog/desk?utm_source=mastodon" in preview
    assert "**Image:** https://www.oakviewpt.com/images/desk.jpg (A laptop on a stand)" in preview
