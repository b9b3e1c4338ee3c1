"""The Facebook Page channel: short posts with the link beside them, photo posts, the outbox's exact request, and the
live transport against the local Graph API (tests/providers/graph.py): once only, code 190, rate limits, expiry."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carecast.errors import CredentialError, PublishError
from carecast.ledger import Ledger
from carecast.model import now_utc
from carecast.pipeline import publish
from carecast_channels.facebook import FacebookChannel
from tests.channels.conftest import outbox_context, publish_run, sample_channel
from tests.factories import make_item, make_observance
from tests.providers import Reply
from tests.providers.graph import PAGE_ID, GraphApiServer, rate_limited
from tests.providers.images import ImageHost

TOKEN = "EAAG-facebook-leak-canary-0001"


def channel(tmp_path: Path, **changes: Any) -> FacebookChannel:
    return sample_channel(tmp_path, FacebookChannel, **changes)


# -- rendering and the outbox ----------------------------------------------------------------------------------------


def test_a_post_is_short_and_its_link_goes_beside_the_message(tmp_path: Path) -> None:
    draft = channel(tmp_path).render([make_item()])
    [message] = draft.parts
    assert message == (
        "Five stretches for desk workers\n\nSitting all day? These five stretches take ten minutes.\n\n"
        "#PhysicalTherapy #OakviewPT"
    )
    assert draft.link == (
        "https://www.oakviewpt.com/blog/desk-stretches?utm_source=facebook&utm_medium=social&utm_campaign=oakview_blog"
    )
    assert draft.image_url is None


def test_a_long_summary_is_shortened_to_max_characters(tmp_path: Path) -> None:
    summary = " ".join(["Thank you for trusting us with your recovery."] * 30)
    [message] = channel(tmp_path, max_characters=300).render([make_item(summary=summary)]).parts
    # Cut after its last whole sentence that fits, never mid-phrase.
    assert 250 < len(message) <= 300 and "recovery.\n\n" in message and "\u2026" not in message


def test_the_outbox_holds_the_exact_feed_request(tmp_path: Path) -> None:
    facebook = channel(tmp_path)
    draft = facebook.render([make_item()])
    receipt = facebook.publish(draft, outbox_context(tmp_path / "outbox", 3))
    assert json.loads(Path(receipt.location).read_text(encoding="utf-8")) == {
        "endpoint": f"POST /v25.0/{PAGE_ID}/feed",
        "url": f"https://graph.facebook.com/v25.0/{PAGE_ID}/feed",
        "account": "Oakview Physical Therapy",
        "request": {"message": draft.parts[0], "link": draft.link},
    }


def test_an_image_without_a_link_is_a_photo_post(tmp_path: Path) -> None:
    facebook = channel(tmp_path)
    item = make_observance(image_url="https://www.oakviewpt.com/images/prw.jpg", image_alt="Our team waving")
    draft = facebook.render([item])
    receipt = facebook.publish(draft, outbox_context(tmp_path / "outbox", 4))
    written = json.loads(Path(receipt.location).read_text(encoding="utf-8"))
    assert written["endpoint"] == f"POST /v25.0/{PAGE_ID}/photos"
    assert written["request"] == {
        "url": "https://www.oakviewpt.com/images/prw.jpg",
        "message": draft.parts[0],
        "alt_text_custom": "Our team waving",
    }


# -- live, against the local Graph API ------------------------------------------------------------------------------


@pytest.fixture
def graph() -> Iterator[GraphApiServer]:
    with GraphApiServer(access_token=TOKEN) as server:
        yield server


@pytest.fixture(autouse=True)
def token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEBOOK_PAGE_TOKEN", TOKEN)


def live(tmp_path: Path, graph: GraphApiServer, **changes: Any) -> FacebookChannel:
    credentials = {"access_token": {"env": "FACEBOOK_PAGE_TOKEN"}}
    return channel(tmp_path, api_base=graph.url, credentials=credentials, **changes)


def test_a_post_lands_once_and_a_rerun_sends_nothing(tmp_path: Path, graph: GraphApiServer, ledger: Ledger) -> None:
    facebook = live(tmp_path, graph)
    ledger.upsert_items([make_item()])

    [first] = publish_run(facebook.settings, ledger, "facebook")
    again = publish_run(facebook.settings, ledger, "facebook")

    assert first.state == "published", first.detail
    [post] = graph.posts
    assert first.detail == f"https://www.facebook.com/{post.id}"
    assert post.kind == "feed" and post.fields["message"] == first.draft.parts[0]  # type: ignore[union-attr]
    assert "utm_source=facebook" in post.fields["link"]
    assert again == [] and len(graph.requests_to("POST", f"/v25.0/{PAGE_ID}/feed")) == 1
    assert TOKEN not in json.dumps([r.query for r in graph.requests])  # the token travels in a header only


def test_a_photo_is_referenced_by_url_and_fetched_by_facebook(
    tmp_path: Path, graph: GraphApiServer, ledger: Ledger, image_host: ImageHost
) -> None:
    facebook = live(tmp_path, graph)
    ledger.upsert_items([make_observance(image_url=f"{image_host.url}/photo.jpg", image_alt="Our team")])

    [outcome] = publish_run(facebook.settings, ledger, "facebook")

    [post] = graph.posts
    assert outcome.state == "published" and post.kind == "photos"
    assert post.fields["url"] == f"{image_host.url}/photo.jpg" and post.image.startswith(b"\xff\xd8")
    assert image_host.requests_to("GET", "/photo.jpg")


def test_an_expired_token_is_a_credential_error_naming_the_channel(
    tmp_path: Path, graph: GraphApiServer, ledger: Ledger
) -> None:
    facebook = live(tmp_path, graph)
    graph.expire_token()

    with pytest.raises(CredentialError, match=r"channels\.facebook\.credentials.*code 190, subcode 463"):
        facebook.publish(facebook.render([make_item()]), outbox_context(tmp_path / "o"))
    with pytest.raises(CredentialError, match=r"channels\.facebook"):
        facebook.verify()
    ledger.upsert_items([make_item()])
    [outcome] = publish_run(facebook.settings, ledger, "facebook")

    # Left for the next run, once a person renewed the token; nothing was posted.
    assert outcome.state == "retry" and "channels.facebook" in outcome.detail
    assert graph.posts == []


@pytest.mark.parametrize(("code", "wait"), [(32, 7 * 60), (4, 3600)])
def test_a_rate_limit_waits_and_then_retries(
    tmp_path: Path, graph: GraphApiServer, ledger: Ledger, code: int, wait: int
) -> None:
    facebook = live(tmp_path, graph)
    ledger.upsert_items([make_item()])
    graph.force(rate_limited(code, regain_minutes=7))

    [limited] = publish_run(facebook.settings, ledger, "facebook")
    early = publish_run(facebook.settings, ledger, "facebook", now=now_utc() + timedelta(seconds=wait - 30))
    [retried] = publish_run(facebook.settings, ledger, "facebook", now=now_utc() + timedelta(seconds=wait + 5))

    assert limited.state == "retry" and f"code {code}" in limited.detail
    assert early == []  # Meta's wait is honoured: nothing is sent before it is over
    assert retried.state == "published" and len(graph.posts) == 1
    assert len(graph.requests_to("POST", f"/v25.0/{PAGE_ID}/feed")) == 2


def test_a_post_whose_answer_was_lost_is_looked_up_not_posted_again(tmp_path: Path, ledger: Ledger) -> None:
    with GraphApiServer(access_token=TOKEN) as slow:
        facebook = live(tmp_path, slow, timeout=0.2)
        ledger.upsert_items([make_item()])
        slow.answer_late(lambda request: request.method == "POST", 0.6)

        [lost] = publish_run(facebook.settings, ledger, "facebook")
        assert slow.late is not None
        slow.late.join()
        [found] = publish(facebook.settings, ledger, "facebook")

        [post] = slow.posts
        assert lost.state == "retry" and "answered nothing (ReadTimeout)" in lost.detail
        assert found.state == "published" and found.detail == f"https://www.facebook.com/{post.id}"
        assert len(slow.requests_to("POST", f"/v25.0/{PAGE_ID}/feed")) == 1
        assert len(slow.requests_to("GET", f"/v25.0/{PAGE_ID}/feed")) == 1


def test_a_post_the_page_does_not_have_is_sent_after_the_lookup(tmp_path: Path, ledger: Ledger) -> None:
    with GraphApiServer(access_token=TOKEN) as graph:
        facebook = live(tmp_path, graph)
        ledger.upsert_items([make_item()])
        # Meta's edge answers 502, then a 500 without a Graph code: both transient, neither posted anything.
        graph.force(Reply(502, "Bad Gateway"), Reply(500, {"error": {"message": "An unknown error occurred"}}))

        outcomes = [publish_run(facebook.settings, ledger, "facebook") for _ in range(3)]

        assert [run[0].state for run in outcomes if run] == ["retry", "retry", "published"]
        assert len(graph.posts) == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_429_or_5xx_without_a_graph_code_is_transient(
    tmp_path: Path, graph: GraphApiServer, ledger: Ledger, status: int
) -> None:
    facebook = live(tmp_path, graph)
    ledger.upsert_items([make_item()])
    graph.force(Reply(status, {"error": {"message": "Please reduce the amount of data"}}, {"Retry-After": "0"}))

    [failed] = publish_run(facebook.settings, ledger, "facebook")
    [retried] = publish(facebook.settings, ledger, "facebook")

    assert failed.state == "retry" and retried.state == "published" and len(graph.posts) == 1


def test_verify_reads_the_page_and_warns_before_the_token_expires(tmp_path: Path, graph: GraphApiServer) -> None:
    facebook = live(tmp_path, graph)
    assert facebook.verify() == f"Facebook: Page 'Oakview Physical Therapy' ({PAGE_ID}); the token does not expire"

    graph.expires_at = int((now_utc() + timedelta(days=3, hours=1)).timestamp())
    said = facebook.verify()

    assert "WARNING: the token expires on" in said and "(in 3 days)" in said
    assert graph.posts == [] and all(r.method == "GET" or r.path == "/v25.0" for r in graph.requests)


def test_the_token_appears_in_no_log_error_or_outbox(
    tmp_path: Path, graph: GraphApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    facebook = live(tmp_path, graph)
    said = facebook.verify()
    graph.force(rate_limited(32))
    with pytest.raises(PublishError) as caught:
        facebook.publish(facebook.render([make_item()]), outbox_context(tmp_path / "o", 1))
    offline = channel(tmp_path / "offline").publish(facebook.render([make_item()]), outbox_context(tmp_path / "o", 2))

    texts = [caplog.text, said, str(caught.value), repr(facebook.config), Path(offline.location).read_text()]
    assert not any(TOKEN in text for text in texts)
