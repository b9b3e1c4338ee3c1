"""The Bluesky channel: counting graphemes, link facets by UTF-8 byte offsets, threads, link cards, the outbox, and
the live transport against the local PDS through the ``atproto`` client: a post lands once, a rerun sends nothing, a
thread resumes at its first part not up, a lost answer is found instead of posted again, rate limits are waited out,
a refused or expired session is a credential error naming the channel, images go up as blobs, no secret leaks."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carecast.errors import ConfigError, CredentialError, PublishError
from carecast.ledger import Ledger, part_address
from carecast.model import Draft
from carecast.practice import load_settings
from carecast_channels.bluesky import BlueskyChannel, bluesky_length, display_url, rich_text, tid
from tests.channels.conftest import Publications, outbox_context, run_channel
from tests.conftest import commented_channels, write_config
from tests.factories import make_item, make_observance
from tests.providers import RecordedRequest, Reply, Storm
from tests.providers.bluesky import BlueskyAccount, BlueskyPds
from tests.providers.images import LOCAL, PNG, ImageHost

ACCOUNT = BlueskyAccount(app_password="bsky-4f1c-9a2e-leak-canary")
LONG_URL = (
    "https://www.oakviewpt.com/blog/desk-stretches?utm_source=bluesky&utm_medium=social&utm_campaign=oakview_blog"
)
THREAD = Draft(
    channel="bluesky",
    item_ids=("rss:blog:pt-month",),
    parts=("1/3 October is PT Month.", "2/3 Thank you for trusting us.", "3/3 See you in the clinic!"),
)


def channel(tmp_path: Path, **changes: Any) -> BlueskyChannel:
    """The sample config's (commented-out) bluesky channel, with ``changes`` to its section."""
    sample = commented_channels()
    sample["channels"]["bluesky"].update(changes)
    settings = load_settings(write_config(tmp_path, sample))
    return BlueskyChannel("bluesky", settings.channels["bluesky"], settings)


def credentials() -> dict[str, Any]:
    return {"handle": ACCOUNT.handle, "app_password": {"env": "BLUESKY_APP_PASSWORD"}}


def live(tmp_path: Path, pds: BlueskyPds, **changes: Any) -> BlueskyChannel:
    return channel(tmp_path, pds_url=pds.url, credentials=credentials(), image_allow_private=LOCAL, **changes)


@pytest.fixture(autouse=True)
def password_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", ACCOUNT.app_password)


@pytest.fixture
def pds() -> Iterator[BlueskyPds]:
    with BlueskyPds(ACCOUNT) as running:
        yield running


def texts(pds: BlueskyPds) -> list[str]:
    return [post["value"]["text"] for post in pds.posts]


# -- counting, facets, rendering -------------------------------------------------------------------------------------


def test_the_rules_example_has_its_link_facet_at_bytes_20_to_44() -> None:
    text, facets = rich_text("Happy PT Month \U0001f499 https://example.com/nptm")
    assert text == "Happy PT Month \U0001f499 https://example.com/nptm"
    [facet] = facets
    assert (facet["index"]["byteStart"], facet["index"]["byteEnd"]) == (20, 44)
    assert facet["features"] == [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/nptm"}]


def test_a_long_link_is_shown_short_and_its_facet_keeps_the_whole_url() -> None:
    text, [link, tag] = rich_text(f"Stretch \U0001f9d8 {LONG_URL} #PhysicalTherapy")
    assert text == "Stretch \U0001f9d8 www.oakviewpt.com/blog/desk-st... #PhysicalTherapy"
    shown = text.encode()[link["index"]["byteStart"] : link["index"]["byteEnd"]].decode()
    assert shown == display_url(LONG_URL) == "www.oakviewpt.com/blog/desk-st..."
    assert link["features"][0]["uri"] == LONG_URL
    assert text.encode()[tag["index"]["byteStart"] : tag["index"]["byteEnd"]] == b"#PhysicalTherapy"
    assert tag["features"] == [{"$type": "app.bsky.richtext.facet#tag", "tag": "PhysicalTherapy"}]


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("a" * 300, 300),
        ("\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 cafe\u0301", 6),  # graphemes, not code points
        (f"Read {LONG_URL}", len("Read www.oakviewpt.com/blog/desk-st...")),
    ],
)
def test_length_is_graphemes_of_the_text_as_posted(text: str, length: int) -> None:
    assert bluesky_length(text) == length


def test_a_record_key_is_a_tid_that_sorts_by_time() -> None:
    early, late = tid(datetime(2026, 3, 2, tzinfo=UTC), 5), tid(datetime(2026, 3, 3, tzinfo=UTC), 5)
    assert len(early) == 13 and early < late and early[0] in "234567abcdefghij"


def test_a_short_item_is_one_post_with_a_link_card(tmp_path: Path) -> None:
    draft = channel(tmp_path).render([make_item(image_url="https://www.oakviewpt.com/images/s.png", image_alt="A")])
    [post] = draft.parts
    assert post.startswith("Five stretches for desk workers\n\nSitting all day?") and LONG_URL in post
    assert post.endswith("#PhysicalTherapy #OakviewPT")
    assert draft.link == LONG_URL and draft.image_alt == "A"
    assert draft.details == {
        "card": {"title": "Five stretches for desk workers", "description": make_item().summary_text}
    }


def test_a_long_item_is_a_numbered_thread_within_300_graphemes_each(tmp_path: Path) -> None:
    summary = " ".join(["Thank you for trusting us with your recovery."] * 12)
    draft = channel(tmp_path, too_long="thread").render([make_item(summary=summary)])
    total = len(draft.parts)
    assert total == 3 and all(part.startswith(f"{n}/{total} ") for n, part in enumerate(draft.parts, start=1))
    assert all(bluesky_length(part) <= 300 for part in draft.parts)
    # A thread longer than max_thread_parts is a teaser: title, whole opening sentences, the link; never refused.
    [teaser] = (
        channel(tmp_path / "short", too_long="thread", max_thread_parts=2).render([make_item(summary=summary)]).parts
    )
    assert bluesky_length(teaser) <= 300
    assert teaser.split("\n\n")[1].endswith("recovery.") and "utm_source=bluesky" in teaser


def test_a_long_item_is_a_teaser_by_default(tmp_path: Path) -> None:
    summary = " ".join(["Thank you for trusting us with your recovery."] * 12)
    [post] = channel(tmp_path).render([make_item(summary=summary)]).parts
    assert bluesky_length(post) <= 300 and post.startswith("Five stretches for desk workers\n\nThank you")


@pytest.mark.parametrize(
    "change",
    [
        {"pds_url": "http://bsky.example.com"},
        {"credentials": {"handle": "oakviewpt.bsky.social", "app_password": "inline-password"}},
        {"max_thread_parts": 1},
    ],
)
def test_config_is_validated(tmp_path: Path, change: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        channel(tmp_path, **change)


def test_the_outbox_holds_the_exact_requests(tmp_path: Path) -> None:
    bluesky = channel(tmp_path)
    draft = bluesky.render([make_observance(url="https://www.oakviewpt.com/prw", image_url="https://x.test/p.png")])
    context = outbox_context(tmp_path / "outbox", 3)
    receipt = bluesky.publish(draft, context)

    written = json.loads(Path(receipt.location).read_text(encoding="utf-8"))
    [request] = written["requests"]
    assert Path(receipt.location) == tmp_path / "outbox" / "bluesky" / "000003.json"
    assert written["endpoint"] == "POST /xrpc/com.atproto.repo.createRecord"
    assert written["upload_blob"] == {
        "endpoint": "POST /xrpc/com.atproto.repo.uploadBlob",
        "image_url": draft.image_url,
    }
    assert request["rkey"] == tid(context.now, 3) and request["repo"] == "{did}"
    record = request["record"]
    assert (record["text"], record["facets"]) == rich_text(draft.parts[0])
    assert record["embed"]["external"]["uri"] == draft.link
    assert record["embed"]["external"]["thumb"] == {"$type": "blob", "ref": {"$link": "{uploaded image}"}}


def test_the_outbox_chains_a_threads_replies(tmp_path: Path) -> None:
    receipt = channel(tmp_path).publish(THREAD, outbox_context(tmp_path / "outbox", 4))
    requests_ = json.loads(Path(receipt.location).read_text(encoding="utf-8"))["requests"]
    assert [r["record"]["text"] for r in requests_] == list(THREAD.parts)
    replies = [r["record"].get("reply") for r in requests_]
    assert replies[0] is None and replies[1] == replies[2]
    assert (replies[1]["root"]["uri"], replies[1]["parent"]["cid"]) == ("{part 1}", "{previous part}")
    assert len({r["rkey"] for r in requests_}) == 3


# -- live, against the local PDS -------------------------------------------------------------------------------------


def test_posts_land_once_and_a_rerun_sends_nothing(tmp_path: Path, pds: BlueskyPds, ledger: Ledger) -> None:
    changes = {"sources": ["blog"], "pds_url": pds.url, "credentials": credentials()}
    first = run_channel(tmp_path / "one", ledger, "bluesky", **changes)
    asked = len(pds.requests)
    second = run_channel(tmp_path / "two", ledger, "bluesky", **changes)

    published = [o for o in first if o.state == "published"]
    assert len(published) == 3  # max_items_per_run; the sample posts are threads
    roots = [post for post in pds.posts if "reply" not in post["value"]]
    assert len(roots) == 3 and all(post["value"]["embed"]["$type"] == "app.bsky.embed.external" for post in roots)
    assert {o.detail.split(";")[0] for o in published} == {
        f"https://bsky.app/profile/{ACCOUNT.handle}/post/{post['uri'].rsplit('/', 1)[-1]}" for post in roots
    }
    assert [o for o in second if o.state == "published"] == [] and len(pds.requests) == asked


def test_a_thread_lands_as_replies_naming_root_and_parent(
    tmp_path: Path, pds: BlueskyPds, publications: Publications
) -> None:
    context = publications.claim(THREAD)
    receipt = live(tmp_path, pds).publish(THREAD, context)

    first, second, third = pds.posts
    assert texts(pds) == list(THREAD.parts)

    def reply(root: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
        ref = "com.atproto.repo.strongRef"
        return {
            "$type": "app.bsky.feed.post#replyRef",
            "root": {"$type": ref, "uri": root["uri"], "cid": root["cid"]},
            "parent": {"$type": ref, "uri": parent["uri"], "cid": parent["cid"]},
        }

    assert second["value"]["reply"] == reply(first, first)
    assert third["value"]["reply"] == reply(first, second)
    assert receipt.provider_ids == tuple(post["uri"] for post in pds.posts)
    assert [p["uri"] for p in publications.ledger.progress(context.publication_id)["posted"]] == list(
        receipt.provider_ids
    )


def test_the_outbox_request_is_the_one_the_pds_gets(
    tmp_path: Path, pds: BlueskyPds, publications: Publications
) -> None:
    bluesky = live(tmp_path, pds)
    with ImageHost() as images:
        draft = bluesky.render([make_item(image_url=f"{images.url}/photo.png")])
        bluesky.publish(draft, publications.claim(draft))
    offline = channel(tmp_path / "offline").publish(draft, outbox_context(tmp_path / "o", 1))

    [written] = json.loads(Path(offline.location).read_text(encoding="utf-8"))["requests"]
    [sent] = [r.body for r in pds.requests_to("POST", "/xrpc/com.atproto.repo.createRecord")]
    blob = pds.posts[0]["value"]["embed"]["external"]["thumb"]
    # What only the PDS can say (the account's DID, the uploaded blob) and the moment of sending differ.
    written["record"]["embed"]["external"]["thumb"] = blob
    written |= {"repo": ACCOUNT.did, "rkey": sent["rkey"]}
    written["record"]["createdAt"] = sent["record"]["createdAt"]
    assert sent == written


class FailsThirdPost(BlueskyPds):
    """Answers the third record creation with a 503, as a PDS in an outage does."""

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path.endswith("createRecord") and len(self.requests_to("POST", request.path)) == 3:
            return Reply(503, {"error": "InternalServerError", "message": "Internal Server Error"})
        return super().handle(request)


def test_a_thread_cut_short_resumes_at_its_first_part_not_up(tmp_path: Path, publications: Publications) -> None:
    with FailsThirdPost(ACCOUNT) as pds:
        bluesky = live(tmp_path, pds)
        context = publications.claim(THREAD)
        with pytest.raises(PublishError, match=r"post 3 of 3.*2 of 3 posts are up") as caught:
            bluesky.publish(THREAD, context)
        assert caught.value.transient
        publications.fail(context, caught.value)

        again = publications.claim(THREAD)  # the next run's claim of the failed publication
        receipt = live(tmp_path / "next", pds).publish(THREAD, again)

    assert again.publication_id == context.publication_id
    assert texts(pds) == list(THREAD.parts)
    assert len(receipt.provider_ids) == 3 and pds.posts[2]["value"]["reply"]["parent"]["uri"] == pds.posts[1]["uri"]


def test_a_part_whose_answer_was_lost_is_found_not_posted_again(tmp_path: Path, publications: Publications) -> None:
    with BlueskyPds(ACCOUNT) as pds:
        pds.answer_late(lambda request: request.path.endswith("createRecord") and len(pds.posts) == 2, delay=1.0)
        context = publications.claim(THREAD)
        with pytest.raises(PublishError, match=r"post 2 of 3.*cannot be reached") as caught:
            live(tmp_path, pds, timeout=0.3).publish(THREAD, context)
        assert pds.late is not None
        pds.late.join()
        publications.fail(context, caught.value)
        receipt = live(tmp_path / "next", pds).publish(THREAD, publications.claim(THREAD))

    # The second part was up: the retry asked for it by its record key and went on with the third.
    assert caught.value.transient
    assert texts(pds) == list(THREAD.parts)
    assert len(pds.requests_to("POST", "/xrpc/com.atproto.repo.createRecord")) == 3
    assert pds.requests_to("GET", "/xrpc/com.atproto.repo.getRecord")[0].query["rkey"] == pds.posts[1]["uri"][-13:]
    assert receipt.provider_ids == tuple(post["uri"] for post in pds.posts)


def test_a_part_left_unknown_by_a_dead_run_is_looked_up_and_sent_once(
    tmp_path: Path, pds: BlueskyPds, publications: Publications
) -> None:
    # What a run killed while posting part 1 leaves: the part claimed, its record key saved, nothing on the PDS.
    ledger, context = publications.ledger, publications.claim(THREAD)
    now = datetime.now(UTC)
    ledger.claim_delivery(context.publication_id, part_address(1))
    pending = {"rkey": tid(now, context.publication_id), "createdAt": now.isoformat()}
    ledger.save_progress(context.publication_id, {"posted": [], "notes": [], "pending": pending})
    assert ledger.resume_stale("bluesky", timedelta(0)) == [context.publication_id]
    assert ledger.deliveries(context.publication_id)[part_address(1)].state == "unknown"

    receipt = live(tmp_path, pds).publish(THREAD, context)

    # The record key was asked for first; it was not there, so the part was claimed again and posted under it.
    assert pds.requests_to("GET", "/xrpc/com.atproto.repo.getRecord")[0].query["rkey"] == pending["rkey"]
    assert texts(pds) == list(THREAD.parts) and pds.posts[0]["uri"].endswith(pending["rkey"])
    parts = ledger.deliveries(context.publication_id)
    assert [parts[part_address(n)].state for n in (1, 2, 3)] == ["sent"] * 3
    assert [parts[part_address(n)].provider_id for n in (1, 2, 3)] == list(receipt.provider_ids)
    assert not ledger.unknown_deliveries([context.publication_id])


def test_a_run_asked_to_stop_posts_no_further_part(tmp_path: Path, pds: BlueskyPds, publications: Publications) -> None:
    context = publications.claim(THREAD)
    context.stopping.set()
    with pytest.raises(PublishError, match="stopped by a shutdown") as caught:
        live(tmp_path, pds).publish(THREAD, context)
    assert caught.value.transient and texts(pds) == []


def test_a_rate_limit_is_waited_out_and_sent_again(tmp_path: Path, pds: BlueskyPds, publications: Publications) -> None:
    pds.throttle(1, reset_in=1.0)
    single = Draft(channel="bluesky", item_ids=("rate",), parts=("Happy PT Month!",))

    receipt = live(tmp_path, pds).publish(single, publications.claim(single))

    assert len(pds.requests_to("POST", "/xrpc/com.atproto.repo.createRecord")) == 2
    assert texts(pds) == ["Happy PT Month!"] and receipt.provider_ids == (pds.posts[0]["uri"],)


def test_a_rate_limit_longer_than_the_budget_is_left_for_the_next_run(
    tmp_path: Path, pds: BlueskyPds, publications: Publications
) -> None:
    pds.throttle(1, reset_in=600)
    single = Draft(channel="bluesky", item_ids=("rate-long",), parts=("Happy PT Month!",))

    with pytest.raises(PublishError, match="rate limit") as caught:
        live(tmp_path, pds).publish(single, publications.claim(single))

    assert caught.value.transient and caught.value.retry_after is not None and 590 < caught.value.retry_after <= 601
    assert pds.posts == []


def test_a_wrong_app_password_is_a_credential_error_naming_the_channel(
    tmp_path: Path, pds: BlueskyPds, publications: Publications, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "revoked-app-password")
    bluesky = live(tmp_path, pds)
    with pytest.raises(CredentialError, match=r"channels\.bluesky\.credentials.*AuthenticationRequired"):
        bluesky.publish(THREAD, publications.claim(THREAD))
    with pytest.raises(CredentialError, match=r"channels\.bluesky\.credentials"):
        bluesky.verify()
    assert pds.posts == []


def test_an_expired_session_is_a_credential_error_naming_the_channel(
    tmp_path: Path, pds: BlueskyPds, publications: Publications
) -> None:
    bluesky = live(tmp_path, pds)
    assert bluesky.verify().startswith(f"Bluesky: signed in as @{ACCOUNT.handle}")
    pds.expire_sessions()  # a long-lived worker's session, expired since it signed in

    with pytest.raises(CredentialError, match=r"channels\.bluesky\.credentials.*ExpiredToken"):
        bluesky.publish(THREAD, publications.claim(THREAD))
    assert pds.posts == []


def test_an_image_goes_up_as_the_link_cards_thumbnail(
    tmp_path: Path, pds: BlueskyPds, publications: Publications
) -> None:
    bluesky = live(tmp_path, pds)
    with ImageHost() as images:
        draft = bluesky.render([make_item(image_url=f"{images.url}/photo.png")])
        receipt = bluesky.publish(draft, publications.claim(draft))

    [upload] = pds.requests_to("POST", "/xrpc/com.atproto.repo.uploadBlob")
    assert upload.raw == PNG and upload.headers["Content-Type"] == "image/png"
    [post] = pds.posts
    external = post["value"]["embed"]["external"]
    assert external["uri"] == LONG_URL and external["title"] == "Five stretches for desk workers"
    assert external["thumb"]["ref"]["$link"] in pds.repo.blobs and receipt.notes == ()


def test_an_image_without_a_link_is_embedded_with_its_alt_text(
    tmp_path: Path, pds: BlueskyPds, publications: Publications
) -> None:
    bluesky = live(tmp_path, pds)
    with ImageHost() as images:
        draft = bluesky.render([make_observance(image_url=f"{images.url}/photo.png", image_alt="Our team")])
        bluesky.publish(draft, publications.claim(draft))

    [post] = pds.posts
    [image] = post["value"]["embed"]["images"]
    assert post["value"]["embed"]["$type"] == "app.bsky.embed.images" and image["alt"] == "Our team"


@pytest.mark.parametrize(("path", "why"), [("/missing.png", "HTTP 404"), ("/large.png", "1000000")])
def test_an_image_that_cannot_go_up_does_not_block_the_post(
    tmp_path: Path, pds: BlueskyPds, publications: Publications, path: str, why: str
) -> None:
    bluesky = live(tmp_path, pds)
    with ImageHost() as images:
        draft = bluesky.render([make_item(image_url=f"{images.url}{path}")])
        receipt = bluesky.publish(draft, publications.claim(draft))

    [post] = pds.posts
    assert "thumb" not in post["value"]["embed"]["external"]
    assert len(receipt.notes) == 1 and receipt.notes[0].startswith("image not attached") and why in receipt.notes[0]


def test_no_secret_appears_in_logs_errors_ledger_or_outbox(
    tmp_path: Path, pds: BlueskyPds, publications: Publications, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bluesky = live(tmp_path, pds)
    receipt = bluesky.publish(THREAD, publications.claim(THREAD))
    said = bluesky.verify()
    pds.expire_sessions()
    other = Draft(channel="bluesky", item_ids=("other",), parts=("Hi",))
    with pytest.raises(CredentialError) as caught:
        bluesky.publish(other, publications.claim(other))
    offline = channel(tmp_path / "offline").publish(THREAD, outbox_context(tmp_path / "o", 2))

    texts_ = [caplog.text, str(caught.value), repr(caught.value), str(receipt.to_json()), said, repr(bluesky.config)]
    # Nor does a session token the PDS issued (JWTs start with the encoded header "eyJ").
    assert not any(secret in text for secret in [ACCOUNT.app_password, "eyJ"] for text in texts_)
    stored = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    assert Path(offline.location).read_bytes() in stored
    assert not any(ACCOUNT.app_password.encode() in content or b"eyJ" in content for content in stored)


def test_an_unreachable_pds_is_transient(tmp_path: Path, publications: Publications) -> None:
    with BlueskyPds(ACCOUNT) as gone:
        url = gone.url  # once it stops, nothing listens there

    with pytest.raises(PublishError, match="signing in: Bluesky cannot be reached") as caught:
        channel(tmp_path, pds_url=url, credentials=credentials()).publish(THREAD, publications.claim(THREAD))

    assert caught.value.transient


class FailsFirstPostAndLookup(BlueskyPds):
    """A PDS whose first ``createRecord`` and first ``getRecord`` answer 500 (the post was not made)."""

    def handle(self, request: RecordedRequest) -> Reply:
        for method in ("createRecord", "getRecord"):
            if request.path.endswith(method) and len([r for r in self.requests if r.path.endswith(method)]) == 1:
                return Reply(500, {"error": "InternalServerError", "message": "Internal Server Error"})
        return super().handle(request)


def test_a_500_on_the_post_and_on_its_lookup_leaves_the_part_for_a_later_run(
    tmp_path: Path, publications: Publications
) -> None:
    with FailsFirstPostAndLookup(ACCOUNT) as pds:
        context = publications.claim(THREAD)
        failures = []
        for run in range(2):
            with pytest.raises(PublishError) as caught:
                live(tmp_path / f"run{run}", pds).publish(THREAD, context)
            failures.append(caught.value)
            publications.fail(context, caught.value)
            context = publications.claim(THREAD)  # the next run's claim of the failed publication
        receipt = live(tmp_path / "last", pds).publish(THREAD, context)

    assert all(failure.transient for failure in failures), [failure.reason for failure in failures]
    assert "looking it up" in failures[1].reason
    assert texts(pds) == list(THREAD.parts) and len(receipt.provider_ids) == 3
    assert not publications.ledger.unknown_deliveries([context.publication_id])


def test_a_dropped_connection_is_transient_and_the_part_is_found_not_posted_again(
    tmp_path: Path, pds: BlueskyPds, publications: Publications
) -> None:
    context = publications.claim(THREAD)
    pds.storm(Storm(1.0, lambda request: request.path.endswith("createRecord") and not pds.posts, kinds=("lost",)))
    with pytest.raises(PublishError, match="answered nothing") as caught:
        live(tmp_path, pds).publish(THREAD, context)
    pds.storm(None)
    publications.fail(context, caught.value)
    receipt = live(tmp_path / "next", pds).publish(THREAD, publications.claim(THREAD))

    assert caught.value.transient and texts(pds) == list(THREAD.parts) and len(receipt.provider_ids) == 3
    assert len(pds.requests_to("POST", "/xrpc/com.atproto.repo.createRecord")) == 3  # the lost one was found
