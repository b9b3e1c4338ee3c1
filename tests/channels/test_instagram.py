"""The Instagram channel: an image or nothing, captions without URLs within 2,200 characters and 30 hashtags, the
outbox's three requests, and the two-step publish against the local Graph API, resumed at the step recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carecast.errors import CredentialError, PublishError, RenderError
from carecast.ledger import Ledger
from carecast.model import ContentItem, Draft, now_utc
from carecast.pipeline import publish
from carecast_channels.instagram import InstagramChannel
from tests.channels.conftest import claimed_context, outbox_context, publish_run, sample_channel
from tests.factories import make_item
from tests.providers import Reply
from tests.providers.graph import IG_USER_ID, GraphApiServer, rate_limited
from tests.providers.images import ImageHost

TOKEN = "EAAG-instagram-leak-canary-0002"
IMAGE = "https://www.oakviewpt.com/images/blog/desk-setup.jpg"


def channel(tmp_path: Path, **changes: Any) -> InstagramChannel:
    return sample_channel(tmp_path, InstagramChannel, **changes)


def with_image(**overrides: Any) -> ContentItem:
    return make_item(**{"image_url": IMAGE, "image_alt": "A laptop on a stand", **overrides})


# -- rendering and the outbox ----------------------------------------------------------------------------------------


def test_an_item_without_an_image_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"needs an image.*never posted as text alone"):
        channel(tmp_path).render([make_item()])


def test_a_patient_story_needs_a_release_naming_instagram(tmp_path: Path) -> None:
    story = with_image(mentions_patient=True, authorized_channels=("newsletter",))
    with pytest.raises(RenderError, match="HIPAA"):
        channel(tmp_path).render([story])
    released = channel(tmp_path / "released").render([replace(story, authorized_channels=("newsletter", "instagram"))])
    assert released.image_url == IMAGE


def test_a_caption_names_the_page_instead_of_pasting_the_url(tmp_path: Path) -> None:
    draft = channel(tmp_path).render([with_image()])
    [caption] = draft.parts
    assert caption == (
        "Five stretches for desk workers\n\nSitting all day? These five stretches take ten minutes.\n\n"
        "Read more on our blog: link in bio.\n\n#PhysicalTherapy #OakviewPT"
    )
    assert "http" not in caption and (draft.image_url, draft.image_alt) == (IMAGE, "A laptop on a stand")


def test_a_long_caption_is_shortened_to_2200_characters(tmp_path: Path) -> None:
    summary = " ".join(["Thank you for trusting us with your recovery."] * 80)
    [caption] = channel(tmp_path).render([with_image(summary=summary)]).parts
    assert 2100 < len(caption) <= 2200 and "recovery.\n\n" in caption  # after its last whole sentence that fits


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("New hours! Details at https://www.oakviewpt.com/hours", "a URL in the caption"),
        (" ".join(f"#tag{n}a" for n in range(31)), "31 hashtags of 30"),
    ],
)
def test_an_edited_caption_is_held_to_the_same_rules(tmp_path: Path, text: str, reason: str) -> None:
    draft = Draft(channel="instagram", item_ids=("a",), parts=(text,), image_url=IMAGE)
    with pytest.raises(RenderError, match=reason):
        channel(tmp_path).enforce(draft)


def test_the_outbox_holds_the_three_requests_in_order(tmp_path: Path) -> None:
    instagram = channel(tmp_path)
    draft = instagram.render([with_image()])
    receipt = instagram.publish(draft, outbox_context(tmp_path / "outbox", 5))
    base = f"https://graph.facebook.com/v25.0/{IG_USER_ID}"
    assert json.loads(Path(receipt.location).read_text(encoding="utf-8")) == {
        "account": "@oakviewpt",
        "requests": [
            {
                "endpoint": f"POST /v25.0/{IG_USER_ID}/media",
                "url": f"{base}/media",
                "request": {"image_url": IMAGE, "caption": draft.parts[0], "alt_text": "A laptop on a stand"},
            },
            {
                "endpoint": "GET /v25.0/{container}?fields=status_code",
                "url": "https://graph.facebook.com/v25.0/{container}?fields=status_code",
                "until": "FINISHED",
            },
            {
                "endpoint": f"POST /v25.0/{IG_USER_ID}/media_publish",
                "url": f"{base}/media_publish",
                "request": {"creation_id": "{container}"},
            },
        ],
    }


# -- live, against the local Graph API ------------------------------------------------------------------------------


@pytest.fixture
def graph() -> Iterator[GraphApiServer]:
    with GraphApiServer(access_token=TOKEN) as server:
        yield server


@pytest.fixture(autouse=True)
def token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSTAGRAM_ACCESS_TOKEN", TOKEN)


def live(tmp_path: Path, graph: GraphApiServer, **changes: Any) -> InstagramChannel:
    credentials = {"access_token": {"env": "INSTAGRAM_ACCESS_TOKEN"}}
    return channel(tmp_path, api_base=graph.url, credentials=credentials, poll_every=0.05, **changes)


def test_a_post_lands_once_with_its_image_fetched_by_instagram(
    tmp_path: Path, graph: GraphApiServer, ledger: Ledger, image_host: ImageHost
) -> None:
    instagram = live(tmp_path, graph)
    ledger.upsert_items([make_item(source="stories", image_url=f"{image_host.url}/photo.jpg", image_alt="A desk")])

    [first] = publish_run(instagram.settings, ledger, "instagram")
    again = publish_run(instagram.settings, ledger, "instagram")

    assert first.state == "published", first.detail
    [media] = graph.published
    assert first.detail == media.permalink
    assert media.container.image.startswith(b"\xff\xd8\xff") and media.container.alt_text == "A desk"
    assert media.container.caption == first.draft.parts[0]  # type: ignore[union-attr]
    # Made, looked at until processed (one IN_PROGRESS, then FINISHED), published, its permalink read.
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in graph.requests] == [
        ("POST", "media"),
        ("GET", media.container.id),
        ("GET", media.container.id),
        ("POST", "media_publish"),
        ("GET", media.id),
    ]
    assert again == [] and len(graph.requests) == 5


def test_a_publish_cut_short_resumes_with_the_recorded_container(
    tmp_path: Path, graph: GraphApiServer, ledger: Ledger, image_host: ImageHost
) -> None:
    instagram = live(tmp_path, graph)
    ledger.upsert_items([make_item(source="stories", image_url=f"{image_host.url}/photo.jpg")])
    original, publishes = graph.route, []

    def limited_publish(method: str, node: str, fields: dict[str, Any]) -> Any:
        # The first media_publish meets a business-use-case rate limit, as a busy account's would.
        if node.endswith("media_publish") and not publishes:
            publishes.append(node)
            return rate_limited(80002, regain_minutes=2)
        return original(method, node, fields)

    graph.route = limited_publish  # type: ignore[method-assign]
    [limited] = publish_run(instagram.settings, ledger, "instagram")
    [resumed] = publish_run(instagram.settings, ledger, "instagram", now=now_utc() + timedelta(minutes=3))

    assert limited.state == "retry" and "rate limit" in limited.detail
    assert resumed.state == "published", resumed.detail
    # One container only: the retry polled the recorded one and published it.
    assert len(graph.containers) == 1 and len(graph.published) == 1
    assert len(graph.requests_to("POST", f"/v25.0/{IG_USER_ID}/media")) == 1


def test_a_publish_whose_answer_was_lost_asks_its_container_and_is_not_published_again(
    tmp_path: Path, ledger: Ledger, image_host: ImageHost
) -> None:
    with GraphApiServer(access_token=TOKEN) as graph:
        instagram = live(tmp_path, graph, timeout=0.3)
        ledger.upsert_items([make_item(source="stories", image_url=f"{image_host.url}/photo.jpg")])
        graph.answer_late(lambda request: request.path.endswith("/media_publish"), 0.8)

        [lost] = publish_run(instagram.settings, ledger, "instagram")
        assert graph.late is not None
        graph.late.join()
        [found] = publish(instagram.settings, ledger, "instagram")

        assert lost.state == "retry" and "answered nothing" in lost.detail
        assert found.state == "published" and "(published)" in found.detail
        assert len(graph.published) == 1 and len(graph.requests_to("POST", f"/v25.0/{IG_USER_ID}/media_publish")) == 1


@pytest.mark.parametrize("status", [429, 500])
def test_a_429_or_5xx_without_a_code_on_the_container_step_is_transient(
    tmp_path: Path, graph: GraphApiServer, ledger: Ledger, image_host: ImageHost, status: int
) -> None:
    instagram = live(tmp_path, graph)
    ledger.upsert_items([make_item(source="stories", image_url=f"{image_host.url}/photo.jpg")])
    graph.force(Reply(status, {"error": {"message": "Please retry your request later."}}))

    [failed] = publish_run(instagram.settings, ledger, "instagram")
    [retried] = publish(instagram.settings, ledger, "instagram")

    assert failed.state == "retry" and retried.state == "published" and len(graph.published) == 1


def test_an_image_instagram_cannot_use_fails_for_good_with_the_reason(
    tmp_path: Path, graph: GraphApiServer, ledger: Ledger, image_host: ImageHost
) -> None:
    instagram = live(tmp_path, graph)
    draft = instagram.render([with_image(image_url=f"{image_host.url}/photo.png")])

    with pytest.raises(PublishError, match=r"ERROR \(Error: Media download has failed") as caught:
        instagram.publish(draft, claimed_context(ledger, draft, tmp_path / "outbox"))

    assert not caught.value.transient and graph.published == []


def test_processing_that_takes_too_long_is_left_for_the_next_run(
    tmp_path: Path, graph: GraphApiServer, ledger: Ledger, image_host: ImageHost
) -> None:
    graph.polls_until_finished = 100
    instagram = live(tmp_path, graph, poll_for=0.2)
    draft = instagram.render([with_image(image_url=f"{image_host.url}/photo.jpg")])
    context = claimed_context(ledger, draft, tmp_path / "outbox")

    with pytest.raises(PublishError, match="still processing") as caught:
        instagram.publish(draft, context)

    assert caught.value.transient and caught.value.retry_after == 60
    assert context.ledger.progress(context.publication_id) == {"container": next(iter(graph.containers))}


def test_an_expired_token_is_a_credential_error_naming_the_channel(
    tmp_path: Path, graph: GraphApiServer, ledger: Ledger
) -> None:
    instagram = live(tmp_path, graph)
    graph.expire_token()
    draft = instagram.render([with_image()])
    with pytest.raises(CredentialError, match=r"channels\.instagram\.credentials.*code 190"):
        instagram.publish(draft, claimed_context(ledger, draft, tmp_path / "outbox"))
    assert graph.containers == {}


def test_verify_reads_the_account_and_warns_before_the_token_expires(tmp_path: Path, graph: GraphApiServer) -> None:
    graph.expires_at = int((now_utc() + timedelta(days=6, hours=1)).timestamp())
    said = live(tmp_path, graph).verify()
    assert said.startswith(f"Instagram: @oakviewpt ({IG_USER_ID}); WARNING: the token expires on")
    assert "(in 6 days)" in said and graph.containers == {}
