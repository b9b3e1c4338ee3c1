"""The X channel's live transport against the local X API server: reply chains, resumed threads, images, the
failure classes (429, 5xx, unreachable, 403 duplicate, 401), credentials that never leak, and ``api_base``."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import PIL.Image
import pytest
import requests

from carecast.channel import PublishContext
from carecast.errors import AlreadyClaimed, ConfigError, CredentialError, PublishError
from carecast.model import Draft
from carecast.practice import load_settings
from carecast_channels.x import ApiBaseAdapter, XChannel
from tests.channels.conftest import Publications
from tests.conftest import write_config
from tests.providers import LocalHttpServer, RecordedRequest, Reply
from tests.providers.xapi import XApiServer, XCredentials

# Distinct values, so a leak of any of them anywhere is found by a plain substring search.
SECRETS = XCredentials(
    consumer_key="ck-7f3a9e1b-leak-canary",
    consumer_secret="cs-52d8c0aa-leak-canary",
    access_token="1000000001-at-9b1e44f0-leak-canary",
    access_token_secret="ats-e0c7d3b2-leak-canary",
)
ENV = {
    "consumer_key": "X_CONSUMER_KEY",
    "consumer_secret": "X_CONSUMER_SECRET",
    "access_token": "X_ACCESS_TOKEN",
    "access_token_secret": "X_ACCESS_TOKEN_SECRET",
}
THREAD = Draft(
    channel="x",
    item_ids=("rss:blog:pt-month",),
    parts=("1/3 October is PT Month.", "2/3 Thank you for trusting us.", "3/3 See you in the clinic!"),
)


def png(width: int, height: int) -> bytes:
    """A real PNG of ``width`` x ``height`` pixels, as Pillow writes it."""
    stream = io.BytesIO()
    PIL.Image.new("RGB", (width, height), (29, 78, 99)).save(stream, "PNG")
    return stream.getvalue()


PNG = png(640, 360)
#: A 1x1 PNG: a tracking pixel, even when a server says it is a photo.
PIXEL = png(1, 1)
#: The networks the test image server is on, which the channel must be allowed to fetch from.
LOCAL = ["127.0.0.0/8"]


class Images(LocalHttpServer):
    """A web server for the item's image: ``/photo.png`` is a photo, ``/pixel.jpg`` a 1x1 PNG said to be a JPEG,
    ``/page.jpg`` HTML said to be a JPEG; anything else is 404."""

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path == "/photo.png":
            return Reply(200, PNG, {"Content-Type": "image/png"})
        if request.path == "/pixel.jpg":
            return Reply(200, PIXEL, {"Content-Type": "image/jpeg"})
        if request.path == "/page.jpg":
            return Reply(200, "<html>Not an image</html>", {"Content-Type": "image/jpeg"})
        return Reply(404, "not found")


class FailsThirdPost(XApiServer):
    """Answers the third ``POST /2/tweets`` with a 503, as X does in an outage; behaves otherwise."""

    def handle(self, request: RecordedRequest) -> Reply:
        if (request.method, request.path) == ("POST", "/2/tweets") and len(self.requests_to("POST", "/2/tweets")) == 3:
            return Reply(503, {"title": "Service Unavailable", "detail": "Service Unavailable", "status": 503})
        return super().handle(request)


class AnswersSecondPostLate(XApiServer):
    """Posts the second ``POST /2/tweets`` but answers it only after ``delay`` seconds, past the client's timeout."""

    def __init__(self, delay: float) -> None:
        super().__init__(credentials=SECRETS)
        self.delay = delay
        self.late: threading.Thread | None = None

    def handle(self, request: RecordedRequest) -> Reply:
        reply = super().handle(request)
        if (request.method, request.path) == ("POST", "/2/tweets") and len(self.tweets) == 2 and self.late is None:
            self.late = threading.current_thread()
            time.sleep(self.delay)
        return reply


@pytest.fixture
def server() -> Iterator[XApiServer]:
    with XApiServer(credentials=SECRETS) as running:
        yield running


@pytest.fixture(autouse=True)
def credentials_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, variable in ENV.items():
        monkeypatch.setenv(variable, getattr(SECRETS, name))


def configured_channel(tmp_path: Path, **changes: object) -> XChannel:
    """The sample config's X channel with credentials from the environment and ``changes`` to its section."""
    credentials = {name: {"env": variable} for name, variable in ENV.items()}
    file = write_config(tmp_path, {"channels": {"x": {"credentials": credentials, **changes}}})
    settings = load_settings(file)
    return XChannel("x", settings.channels["x"], settings)


def live_channel(tmp_path: Path, server: XApiServer, **changes: object) -> XChannel:
    """The sample config's X channel with credentials from the environment, its ``api_base`` at ``server``."""
    return configured_channel(tmp_path, **{"api_base": server.url, "image_allow_private": LOCAL, **changes})


def test_a_thread_lands_as_a_reply_chain(tmp_path: Path, server: XApiServer, publications: Publications) -> None:
    context = publications.claim(THREAD)

    receipt = live_channel(tmp_path, server).publish(THREAD, context)

    first, second, third = server.tweets
    assert [t.text for t in server.tweets] == list(THREAD.parts)
    assert [t.in_reply_to_tweet_id for t in server.tweets] == [None, first.id, second.id]
    assert receipt.provider_ids == (first.id, second.id, third.id)
    assert receipt.location == f"https://x.com/OakviewPT/status/{first.id}"
    assert publications.ledger.progress(context.publication_id)["posted"] == [first.id, second.id, third.id]
    posted = server.requests_to("POST", "/2/tweets")
    assert all(r.headers["Authorization"].startswith("OAuth ") for r in posted)
    assert posted[1].body == {"text": THREAD.parts[1], "reply": {"in_reply_to_tweet_id": first.id}}


def test_api_base_sends_posts_uploads_and_sign_in_to_that_server(
    tmp_path: Path, server: XApiServer, publications: Publications
) -> None:
    channel = configured_channel(tmp_path, api_base=server.url, image_allow_private=LOCAL)
    with Images() as images:
        draft = Draft(**{**THREAD.__dict__, "image_url": f"{images.url}/photo.png"})
        receipt = channel.publish(draft, publications.claim(draft))

    assert channel.verify() == "X: signed in as @oakviewpt"
    first, second, _ = server.tweets
    assert [t.in_reply_to_tweet_id for t in server.tweets] == [None, first.id, second.id]
    assert receipt.provider_ids == tuple(t.id for t in server.tweets)
    assert [t.media_ids for t in server.tweets] == [tuple(server.media), (), ()]
    meant = [(r.path, r.headers["X-Forwarded-Host"]) for r in server.requests]
    assert meant == [("/2/media/upload", "api.twitter.com")] + [("/2/tweets", "api.twitter.com")] * 3 + [
        ("/2/users/me", "api.twitter.com")
    ]


def test_an_api_base_with_a_path_prefixes_it_and_keeps_the_query() -> None:
    with Images() as gateway, requests.Session() as session:
        ApiBaseAdapter(f"{gateway.url}/x-gateway/").mount_on(session)
        session.get("https://api.twitter.com/2/users/me?user.fields=username", timeout=5)

    [request] = gateway.requests
    assert (request.path, request.query) == ("/x-gateway/2/users/me", {"user.fields": "username"})
    assert request.headers["X-Forwarded-Host"] == "api.twitter.com"


@pytest.mark.parametrize("base", ["http://x-gateway.example.com", "http://localhost:8027", "ftp://127.0.0.1"])
def test_an_api_base_in_clear_text_is_refused_unless_local(tmp_path: Path, base: str) -> None:
    with pytest.raises(ConfigError, match="api_base"):
        configured_channel(tmp_path, api_base=base)


def test_a_thread_cut_short_by_a_5xx_resumes_at_its_first_part_not_up(
    tmp_path: Path, publications: Publications
) -> None:
    with FailsThirdPost(credentials=SECRETS) as server:
        channel = live_channel(tmp_path, server)
        context = publications.claim(THREAD)
        with pytest.raises(PublishError) as caught:
            channel.publish(THREAD, context)
        assert caught.value.transient
        assert "post 3 of 3" in caught.value.reason and "2 of 3 posts are up" in caught.value.reason
        publications.fail(context, caught.value)
        _, second = server.tweets

        again = publications.claim(THREAD)  # the next run's compare-and-set claim of the failed publication
        receipt = channel.publish(THREAD, again)

        assert again.publication_id == context.publication_id
        retried = server.requests_to("POST", "/2/tweets")[3:]
        assert [r.body for r in retried] == [{"text": THREAD.parts[2], "reply": {"in_reply_to_tweet_id": second.id}}]
        assert [t.text for t in server.tweets] == list(THREAD.parts)
        assert receipt.provider_ids == tuple(t.id for t in server.tweets)


def test_a_post_whose_answer_was_lost_is_found_on_the_timeline_not_posted_again(
    tmp_path: Path, publications: Publications
) -> None:
    with AnswersSecondPostLate(delay=1.0) as server:
        channel = live_channel(tmp_path, server, timeout=0.3)
        context = publications.claim(THREAD)
        with pytest.raises(PublishError) as caught:
            channel.publish(THREAD, context)
        assert server.late is not None
        server.late.join()  # its answer meets a closed connection, as it would at X
        publications.fail(context, caught.value)
        receipt = live_channel(tmp_path / "next", server).publish(THREAD, publications.claim(THREAD))

    # X had the second post but never said so: the retry found it on the timeline and went on with the third.
    assert caught.value.transient
    assert "post 2 of 3" in caught.value.reason and "ReadTimeout" in caught.value.reason
    assert [t.text for t in server.tweets] == list(THREAD.parts)
    assert len(server.requests_to("POST", "/2/tweets")) == 3
    first, second, third = server.tweets
    assert third.in_reply_to_tweet_id == second.id and receipt.provider_ids == (first.id, second.id, third.id)


def test_a_rate_limit_is_transient_until_the_reset(tmp_path: Path, publications: Publications) -> None:
    with XApiServer(credentials=SECRETS, rate_limit=2, rate_window=60) as server:
        context = publications.claim(THREAD)
        with pytest.raises(PublishError) as caught:
            live_channel(tmp_path, server).publish(THREAD, context)

    # The window resets 60 s after its first request: retry_after is what is left of it, not a guess.
    assert caught.value.transient and "429" in caught.value.reason
    assert caught.value.retry_after is not None and 50 <= caught.value.retry_after <= 60
    assert len(publications.ledger.progress(context.publication_id)["posted"]) == 2


def test_duplicate_content_is_permanent_and_never_retried(
    tmp_path: Path, server: XApiServer, publications: Publications
) -> None:
    channel = live_channel(tmp_path, server)
    single = Draft(channel="x", item_ids=("a",), parts=("Happy PT Month from Oakview PT!",))
    channel.publish(single, publications.claim(single))
    copy = Draft(channel="x", item_ids=("b",), parts=single.parts)
    context = publications.claim(copy)

    with pytest.raises(PublishError) as caught:
        channel.publish(copy, context)
    publications.fail(context, caught.value)

    assert not caught.value.transient
    assert "403" in caught.value.reason and "duplicate content" in caught.value.reason
    with pytest.raises(AlreadyClaimed):
        publications.claim(copy)
    assert len(server.requests_to("POST", "/2/tweets")) == 2


def test_wrong_credentials_wait_for_the_staff_to_fix_them_and_fail_verify(
    tmp_path: Path, server: XApiServer, publications: Publications, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("X_CONSUMER_KEY", "someone-elses-key")
    channel = live_channel(tmp_path, server)
    context = publications.claim(THREAD)

    with pytest.raises(CredentialError, match=r"channels\.x\.credentials.*401.*fix it") as caught:
        channel.publish(THREAD, context)
    with pytest.raises(CredentialError, match="401"):
        channel.verify()
    assert server.tweets == []

    # As the pipeline records it (retried), then the staff fix the key: the next run posts the whole thread once.
    publications.ledger.record_failed(context.publication_id, str(caught.value), transient=True)
    monkeypatch.setenv("X_CONSUMER_KEY", SECRETS.consumer_key)
    live_channel(tmp_path / "fixed", server).publish(THREAD, publications.claim(THREAD))
    assert [tweet.text for tweet in server.tweets] == list(THREAD.parts)


def test_a_missing_credential_names_where_it_was_looked_for(
    tmp_path: Path, server: XApiServer, publications: Publications, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("X_ACCESS_TOKEN_SECRET")
    channel = live_channel(tmp_path, server)

    # The pipeline decides what a missing credential means (nothing was sent), the same for every channel.
    with pytest.raises(CredentialError, match="environment variable X_ACCESS_TOKEN_SECRET"):
        channel.publish(THREAD, publications.claim(THREAD))
    with pytest.raises(CredentialError, match="X_ACCESS_TOKEN_SECRET"):
        channel.verify()

    assert server.requests == []


def test_an_unreachable_x_is_transient(tmp_path: Path, publications: Publications) -> None:
    with XApiServer(credentials=SECRETS) as gone:
        channel = live_channel(tmp_path, gone)
    # stopped: its port now refuses connections

    with pytest.raises(PublishError, match="cannot be reached") as caught:
        channel.publish(THREAD, publications.claim(THREAD))

    assert caught.value.transient


def test_verify_signs_in_and_posts_nothing(tmp_path: Path, server: XApiServer) -> None:
    assert live_channel(tmp_path, server).verify() == "X: signed in as @oakviewpt"
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/2/users/me")]


def test_an_account_without_a_handle_asks_x_for_the_username(
    tmp_path: Path, server: XApiServer, publications: Publications
) -> None:
    single = Draft(channel="x", item_ids=("a",), parts=("Open Saturday 9-1.",))
    receipt = live_channel(tmp_path, server, account="oakview-main").publish(single, publications.claim(single))

    assert receipt.location == f"https://x.com/oakviewpt/status/{server.tweets[0].id}"


def test_an_image_is_uploaded_and_attached_to_the_first_part(
    tmp_path: Path, server: XApiServer, publications: Publications
) -> None:
    with Images() as images:
        draft = Draft(**{**THREAD.__dict__, "image_url": f"{images.url}/photo.png", "image_alt": "The clinic's gym"})
        receipt = live_channel(tmp_path, server).publish(draft, publications.claim(draft))

    [(media_id, upload)] = server.media.items()
    assert upload.content == PNG and upload.content_type == "image/png"
    # X API v2's media endpoint, not v1.1's upload.json, which is not in X's current API.
    [request] = server.requests_to("POST", "/2/media/upload")
    assert request.headers["X-Forwarded-Host"] == "api.twitter.com"
    assert request.body["media_category"] == "tweet_image"
    assert server.requests_to("POST", "/1.1/media/upload.json") == []
    assert server.alt_texts == {media_id: "The clinic's gym"}
    assert [t.media_ids for t in server.tweets] == [(media_id,), (), ()]
    assert server.requests_to("POST", "/2/tweets")[0].body["media"] == {"media_ids": [media_id]}
    assert receipt.notes == ()


@pytest.mark.parametrize(
    ("path", "why", "allowed"),
    [
        ("/missing.png", "HTTP 404", LOCAL),
        ("/", "HTTP 404", LOCAL),
        ("/pixel.jpg", "1x1 pixels, too small", LOCAL),
        ("/page.jpg", "not an image", LOCAL),
        # A feed must not make CareCast probe local addresses: only those the config allows.
        ("/photo.png", "127.0.0.1 is a loopback address", False),
        ("/photo.png", "127.0.0.1 is a loopback address", ["10.0.0.0/8"]),
    ],
)
def test_an_image_that_cannot_be_had_does_not_block_the_post(
    tmp_path: Path, server: XApiServer, publications: Publications, path: str, why: str, allowed: object
) -> None:
    with Images() as images:
        draft = Draft(channel="x", item_ids=("a",), parts=("New clinic photos!",), image_url=f"{images.url}{path}")
        channel = live_channel(tmp_path, server, image_allow_private=allowed)
        receipt = channel.publish(draft, publications.claim(draft))

    assert [t.media_ids for t in server.tweets] == [()]
    assert server.media == {}
    assert len(receipt.notes) == 1 and receipt.notes[0].startswith("image not attached") and why in receipt.notes[0]


def test_no_credential_appears_in_logs_errors_ledger_or_outbox(
    tmp_path: Path, publications: Publications, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    with FailsThirdPost(credentials=SECRETS) as server:
        channel = live_channel(tmp_path, server)
        context = publications.claim(THREAD)
        try:
            channel.publish(THREAD, context)
        except PublishError as exc:
            errors += [str(exc), repr(exc), str(exc.__cause__)]
            publications.fail(context, exc)
        receipt = channel.publish(THREAD, publications.claim(THREAD))
        errors.append(channel.verify())
    outbox_channel = XChannel("x", channel.config.model_copy(update={"credentials": None}), channel.settings)
    outbox_receipt = outbox_channel.publish(THREAD, PublishContext(99, publications.outbox, publications.ledger))

    assert len(errors) == 4 and receipt.provider_ids
    stored = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    assert Path(outbox_receipt.location).read_bytes() in stored
    # Every level, the OAuth libraries' DEBUG lines included: channels.x keeps those libraries above DEBUG.
    logged = [record.getMessage() for record in caplog.records]
    for value in (SECRETS.consumer_key, SECRETS.consumer_secret, SECRETS.access_token, SECRETS.access_token_secret):
        assert value not in caplog.text
        assert not any(value in line for line in logged)
        assert not any(value in text for text in errors)
        assert not any(value.encode() in content for content in stored)
        assert value not in repr(channel.config) and value not in str(receipt.to_json())
