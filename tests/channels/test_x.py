"""The X channel: posts, threads and shortened posts within 280 weighted characters, and its outbox request bodies."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from carecast.config import Settings
from carecast.errors import PublishError, RenderError
from carecast.model import Draft
from carecast.pipeline import describe_measures
from carecast.practice import load_settings
from carecast.text import x_measure
from carecast_channels.x import MEDIA_ID, PREVIOUS_ID, XChannel, XConfig
from tests.channels.conftest import outbox_context
from tests.conftest import write_config
from tests.factories import make_item

SENTENCE = "Thank you for trusting us with your recovery, one careful step at a time."
LONG = " ".join(f"{SENTENCE[:-1]} number {n}." for n in range(9))


def channel(tmp_path: Path, **changes: Any) -> XChannel:
    settings: Settings = load_settings(write_config(tmp_path, {"channels": {"x": changes}}))
    return XChannel("x", settings.channels["x"], settings)


def test_short_item_is_one_post_with_tagged_link_and_hashtags(tmp_path: Path) -> None:
    draft = channel(tmp_path).render([make_item()])
    [post] = draft.parts
    assert post.startswith("Five stretches for desk workers")
    assert "#PhysicalTherapy #OakviewPT" in post
    link = next(word for word in post.split() if word.startswith("https://"))
    query = parse_qs(urlsplit(link).query)
    assert query == {"utm_source": ["twitter"], "utm_medium": ["social"], "utm_campaign": ["oakview_blog"]}
    assert draft.measures["parts"] == [{"weighted_length": x_measure(post).weighted_length}]


def test_item_campaign_and_foreign_links(tmp_path: Path) -> None:
    x = channel(tmp_path)
    [post] = x.render([make_item(campaign="prw_2026")]).parts
    assert "utm_campaign=prw_2026" in post
    [post] = x.render([make_item(url="https://www.apta.example/pt-month")]).parts
    assert "https://www.apta.example/pt-month\n" in post
    assert "utm_" not in post


def test_hashtags_can_be_turned_off(tmp_path: Path) -> None:
    [post] = channel(tmp_path, hashtags=False).render([make_item()]).parts
    assert "#" not in post


def test_long_item_becomes_a_numbered_thread(tmp_path: Path) -> None:
    draft = channel(tmp_path, too_long="thread").render([make_item(summary=LONG)])
    parts = draft.parts
    assert 2 <= len(parts) <= 4
    assert all(x_measure(part).weighted_length <= 280 for part in parts)
    assert [part.split()[0] for part in parts] == [f"{n}/{len(parts)}" for n in range(1, len(parts) + 1)]
    # Nothing lost, nothing cut mid-word: the parts without their numbers and the link give back the whole text.
    words = [w for part in parts for w in part.split(" ", 1)[1].split() if not w.startswith("https://")]
    assert " ".join(words) == f"Five stretches for desk workers {LONG} #PhysicalTherapy #OakviewPT"
    # The link is in the first post, so a reader who stops there has it.
    assert "utm_source=twitter" in parts[0] and "utm_source" not in "".join(parts[1:])
    assert all(m["weighted_length"] <= 280 for m in draft.measures["parts"])


def test_a_thread_longer_than_allowed_becomes_a_teaser(tmp_path: Path) -> None:
    draft = channel(tmp_path, too_long="thread", max_thread_parts=2).render([make_item(summary=LONG)])
    [post] = draft.parts
    assert x_measure(post).weighted_length <= 280
    assert post.startswith(f"Five stretches for desk workers\n\n{SENTENCE[:-1]} number 0.")
    assert "utm_source=twitter" in post and "\u2026" not in post  # whole sentences, then the link


def test_a_long_item_is_a_teaser_by_default(tmp_path: Path) -> None:
    """Title, the opening sentences of the post's own paragraphs (never a heading or a list), the link."""
    html = f"<h2>Why it matters</h2><p>{LONG}</p><ul><li>One</li><li>Two</li></ul>"
    item = make_item(summary=LONG, summary_html=html, summary_text=f"Why it matters\n\n{LONG}\n\n* One\n* Two")
    [post] = channel(tmp_path).render([item]).parts
    title, body, link, *_ = post.split("\n\n")
    assert title == "Five stretches for desk workers" and body.startswith(f"{SENTENCE[:-1]} number 0.")
    assert body.endswith(".") and "Why it matters" not in body
    assert link.startswith("https://www.oakviewpt.com/blog/desk-stretches?utm_source=twitter")
    assert x_measure(post).weighted_length <= 280


def test_shorten_mode_cuts_the_summary_and_keeps_the_link(tmp_path: Path) -> None:
    [post] = channel(tmp_path, too_long="shorten").render([make_item(summary=LONG)]).parts
    assert x_measure(post).weighted_length <= 280
    assert ".\n\nhttps://" in post  # cut after a whole sentence
    assert "utm_source=twitter" in post
    assert post.startswith("Five stretches for desk workers\n\nThank you")


def test_shorten_mode_refuses_when_nothing_fits(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="280 weighted"):
        channel(tmp_path, too_long="shorten").render([make_item(summary=LONG, title="Very long title " * 20)])


def test_exactly_one_item(tmp_path: Path) -> None:
    x = channel(tmp_path)
    with pytest.raises(RenderError, match="exactly one item"):
        x.render([make_item(), make_item("other")])
    with pytest.raises(RenderError, match="exactly one item"):
        x.render([])


def test_patient_item_needs_authorization_for_x(tmp_path: Path) -> None:
    x = channel(tmp_path)
    with pytest.raises(RenderError, match="HIPAA"):
        x.render([make_item(mentions_patient=True)])
    assert x.render([make_item(mentions_patient=True, authorized_channels=("x",))]).parts


@pytest.mark.parametrize(("key", "value"), [("too_long", "cut"), ("max_thread_parts", 1), ("max_thread_parts", 11)])
def test_config_is_validated(key: str, value: object) -> None:
    with pytest.raises(ValidationError):
        XConfig.model_validate({"type": "x", key: value})


def read_payload(path: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return result


def test_publish_writes_the_thread_as_a_reply_chain(tmp_path: Path) -> None:
    x = channel(tmp_path)
    draft = x.render([make_item(summary=LONG)])
    receipt = x.publish(draft, outbox_context(tmp_path / "outbox", 1))
    assert receipt.location == str(tmp_path / "outbox" / "x" / "000001.json")
    first, *replies = draft.parts
    assert read_payload(receipt.location) == {
        "endpoint": "POST /2/tweets",
        "account": "@OakviewPT",
        "requests": [
            {"text": first},
            *({"text": text, "reply": {"in_reply_to_tweet_id": PREVIOUS_ID}} for text in replies),
        ],
    }
    assert PREVIOUS_ID == "{previous}"


def test_publish_single_post_and_never_twice(tmp_path: Path) -> None:
    x = channel(tmp_path)
    draft = Draft(channel="x", item_ids=("a",), parts=("Hello from Oakview PT \u2019\u2014",))
    context = outbox_context(tmp_path / "outbox", 2)
    receipt = x.publish(draft, context)
    raw = Path(receipt.location).read_text(encoding="utf-8")
    assert "\u2019\u2014" in raw  # UTF-8 as X gets it, not \\u escapes
    assert read_payload(receipt.location)["requests"] == [{"text": "Hello from Oakview PT \u2019\u2014"}]
    with pytest.raises(PublishError) as caught:
        x.publish(draft, context)
    assert not caught.value.transient


def test_an_items_image_goes_along_and_shows_in_the_outbox(tmp_path: Path) -> None:
    x = channel(tmp_path)
    draft = x.render([make_item(image_url="https://www.oakviewpt.com/img/stretch.jpg")])
    assert draft.image_url == "https://www.oakviewpt.com/img/stretch.jpg"
    payload = read_payload(x.publish(draft, outbox_context(tmp_path / "outbox", 3)).location)
    assert payload["media_upload"] == {
        "endpoint": "POST /2/media/upload",
        "image_url": draft.image_url,
        "alt_text": "Five stretches for desk workers",
    }
    assert payload["requests"] == [{"text": draft.parts[0], "media": {"media_ids": [MEDIA_ID]}}]


def test_credentials_are_references_never_values() -> None:
    refs = {name: {"env": name.upper()} for name in ("consumer_key", "consumer_secret", "access_token")}
    with pytest.raises(ValidationError, match="access_token_secret"):
        XConfig.model_validate({"type": "x", "credentials": refs})
    with pytest.raises(ValidationError):
        XConfig.model_validate({"type": "x", "credentials": {**refs, "access_token_secret": "plain-value"}})


NUMBERED = (
    "Most neck pain in office workers comes from thousands of hours in a setup that works against the body, and "
    "small changes add up. 1. Screen at eye level. The top of the monitor should sit level with your eyes, about "
    "an arm's length away. 2. Elbows at 90 degrees. Keyboard and mouse close, shoulders relaxed. 3. Feet flat. Use "
    "a footrest if your chair is high. 4. Support your lower back. A rolled towel works as well as a cushion. "
    "5. Move every 30 minutes. The best posture is your next posture."
)


def test_a_thread_never_splits_a_list_item_from_its_number(tmp_path: Path) -> None:
    x = channel(tmp_path, too_long="thread")
    parts = x.render([make_item(summary=NUMBERED, title="Desk ergonomics: five small changes")]).parts
    assert len(parts) >= 2
    for part in parts:
        body = part.split(" ", 1)[1]
        assert not re.search(r"\s\d\.$", body), f"ends on a list number: {part!r}"
        assert re.search(r"[.!?]$|#OakviewPT$|utm_campaign=\S+$", body), f"ends mid-sentence: {part!r}"


def test_no_post_of_a_thread_is_only_a_link_or_hashtags(tmp_path: Path) -> None:
    x = channel(tmp_path)
    for summary in (LONG, NUMBERED):
        for part in x.render([make_item(summary=summary)]).parts:
            words = part.split()[1:]
            assert not all(w.startswith(("https://", "#")) for w in words), part


def test_hashtags_that_do_not_fit_are_left_out_with_a_note(tmp_path: Path) -> None:
    x = channel(tmp_path, too_long="shorten")
    draft = x.render([make_item(summary=LONG)])
    assert "#PhysicalTherapy #OakviewPT" in draft.parts[0]  # the summary is shortened for them
    tight = x.render([make_item(summary=LONG, title="Long title " * 22)])
    assert "#" not in tight.parts[0] and tight.measures["notes"] == ["hashtags left out: they do not fit"]


def test_an_untitled_item_does_not_repeat_its_text(tmp_path: Path) -> None:
    summary = "New: Saturday hours start this week, 8am to noon, for evaluations and follow-ups."
    [post] = channel(tmp_path).render([make_item(summary=summary, title=summary[:40] + "\u2026")]).parts
    assert post.count("Saturday hours") == 1


def test_a_link_only_item_has_its_url_once(tmp_path: Path) -> None:
    url = "https://www.oakviewpt.com/blog/new-video"
    [post] = channel(tmp_path).render([make_item(summary=url, title=url, url=url)]).parts
    assert post.count("oakviewpt.com/blog/new-video") == 1


def test_the_drafts_description_says_what_was_left_out(tmp_path: Path) -> None:
    draft = channel(tmp_path, too_long="shorten").render([make_item(summary=LONG, title="Long title " * 22)])
    assert describe_measures(draft).endswith("; hashtags left out: they do not fit")
