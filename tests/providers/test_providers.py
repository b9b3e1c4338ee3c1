"""The provider fakes speak their contracts: each is driven by the real client library the channels will use."""

from __future__ import annotations

import html
import io
import re
import time
from collections.abc import Iterator

import pytest
import requests
import tweepy
from atproto_client import Client, models
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import AuthorizedSession
from google.oauth2.credentials import Credentials

from carecast_channels.x import ApiBaseAdapter
from tests.providers import LocalHttpServer, RecordedRequest, Reply
from tests.providers.bluesky import BlueskyPds
from tests.providers.gbp import GbpServer
from tests.providers.mastodon import MastodonInstance, mastodon_instance
from tests.providers.twilio import TwilioServer, sms_segments, twilio_signature
from tests.providers.xapi import DUPLICATE_DETAIL, XApiServer

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


# --- X API v2 ------------------------------------------------------------------------------------------------------


@pytest.fixture
def x_server() -> Iterator[XApiServer]:
    with XApiServer() as server:
        yield server


def x_client(server: XApiServer, **kwargs: object) -> tweepy.Client:
    client = tweepy.Client(**{**server.credentials.client_kwargs(), "wait_on_rate_limit": False, **kwargs})
    ApiBaseAdapter(server.url).mount_on(client.session)
    return client


def test_x_thread_and_me_over_oauth1(x_server: XApiServer) -> None:
    client = x_client(x_server)

    first = client.create_tweet(text="Happy PT Month! 1/2")
    second = client.create_tweet(text="Thank you for trusting us. 2/2", in_reply_to_tweet_id=first.data["id"])
    me = client.get_me(user_fields=["username"])

    assert re.fullmatch(r"\d{18,20}", first.data["id"])
    assert int(second.data["id"]) > int(first.data["id"])
    assert (str(me.data.id), me.data.username) == (x_server.user.id, x_server.user.username)
    posts = x_server.requests_to("POST", "/2/tweets")
    assert posts[0].body == {"text": "Happy PT Month! 1/2"}
    assert posts[1].body == {
        "text": "Thank you for trusting us. 2/2",
        "reply": {"in_reply_to_tweet_id": first.data["id"]},
    }
    auth = posts[0].headers["Authorization"]
    assert auth.startswith("OAuth ") and "oauth_signature=" in auth
    assert f'oauth_consumer_key="{x_server.credentials.consumer_key}"' in auth
    assert posts[0].headers["X-Forwarded-Host"] == "api.twitter.com"
    assert x_server.requests_to("GET", "/2/users/me")[0].query == {"user.fields": "username"}
    assert [t.in_reply_to_tweet_id for t in x_server.tweets] == [None, first.data["id"]]


def test_x_media_upload_goes_to_upload_host_and_attaches(x_server: XApiServer) -> None:
    c = x_server.credentials
    api = tweepy.API(tweepy.OAuth1UserHandler(c.consumer_key, c.consumer_secret, c.access_token, c.access_token_secret))
    ApiBaseAdapter(x_server.url).mount_on(api.session)

    media = api.media_upload("oakview.png", file=io.BytesIO(PNG))
    x_client(x_server).create_tweet(text="New clinic photos", media_ids=[media.media_id])

    upload = x_server.requests_to("POST", "/1.1/media/upload.json")[0]
    assert upload.headers["X-Forwarded-Host"] == "upload.twitter.com"
    assert x_server.media[media.media_id_string].content == PNG
    assert x_server.tweets[0].media_ids == (media.media_id_string,)


def test_x_unknown_media_and_reply_target_are_refused(x_server: XApiServer) -> None:
    client = x_client(x_server)
    with pytest.raises(tweepy.BadRequest):
        client.create_tweet(text="photo", media_ids=["123"])
    with pytest.raises(tweepy.Forbidden):
        client.create_tweet(text="reply", in_reply_to_tweet_id="42")


def test_x_duplicate_text_is_forbidden(x_server: XApiServer) -> None:
    client = x_client(x_server)
    client.create_tweet(text="Same words")

    with pytest.raises(tweepy.Forbidden) as caught:
        client.create_tweet(text="Same words")

    assert caught.value.api_messages == [DUPLICATE_DETAIL]


def test_x_rate_limit_headers_then_429_with_reset() -> None:
    with XApiServer(rate_limit=2, rate_window=60) as server:
        client = x_client(server, return_type=requests.Response)
        first = client.create_tweet(text="one")
        client.create_tweet(text="two")

        with pytest.raises(tweepy.TooManyRequests) as caught:
            client.create_tweet(text="three")
        other_endpoint = client.get_me()

    assert (first.headers["x-rate-limit-limit"], first.headers["x-rate-limit-remaining"]) == ("2", "1")
    headers = caught.value.response.headers
    assert headers["x-rate-limit-remaining"] == "0"
    assert 0 < int(headers["x-rate-limit-reset"]) - time.time() <= 60
    assert caught.value.reset_time == int(headers["x-rate-limit-reset"])
    assert other_endpoint.headers["x-rate-limit-remaining"] == "1"
    assert [t.text for t in server.tweets] == ["one", "two"]


def test_x_bad_credentials_are_unauthorized(x_server: XApiServer) -> None:
    wrong_key = x_client(x_server, consumer_key="someone-else")
    with pytest.raises(tweepy.Unauthorized):
        wrong_key.create_tweet(text="hello")

    c = x_server.credentials
    unsigned = f'OAuth oauth_consumer_key="{c.consumer_key}", oauth_token="{c.access_token}"'
    reply = requests.get(f"{x_server.url}/2/users/me", headers={"Authorization": unsigned}, timeout=5)
    assert reply.status_code == 401
    assert reply.json()["title"] == "Unauthorized"
    assert "x-rate-limit-reset" in reply.headers
    assert x_server.tweets == []


def test_x_bearer_token_is_accepted(x_server: XApiServer) -> None:
    client = tweepy.Client(bearer_token=x_server.credentials.bearer_token)
    ApiBaseAdapter(x_server.url).mount_on(client.session)

    assert client.get_me(user_auth=False).data.username == x_server.user.username
    assert x_server.requests[0].headers["Authorization"] == f"Bearer {x_server.credentials.bearer_token}"


def test_x_forced_responses_come_first(x_server: XApiServer) -> None:
    client = x_client(x_server)
    x_server.force(Reply(503, {"title": "Service Unavailable", "status": 503}))

    with pytest.raises(tweepy.TwitterServerError):
        client.create_tweet(text="retry me")
    client.create_tweet(text="retry me")

    assert len(x_server.requests_to("POST", "/2/tweets")) == 2
    assert [t.text for t in x_server.tweets] == ["retry me"]


# --- Twilio Messages ---------------------------------------------------------------------------------------------


class CallbackSink(LocalHttpServer):
    """Receives webhooks and answers 204."""

    def handle(self, request: RecordedRequest) -> Reply:
        return Reply(204)


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    with TwilioServer(opted_out={"+15550100002"}, filtered_phrases=["FREE TRIAL"]) as server:
        yield server


def send_sms(server: TwilioServer, form: dict[str, str], auth: tuple[str, str] | None = None) -> requests.Response:
    c = server.credentials
    return requests.post(
        f"{server.url}/2010-04-01/Accounts/{c.account_sid}/Messages.json",
        data=form,
        auth=auth or (c.account_sid, c.auth_token),
        timeout=5,
    )


def test_twilio_signature_matches_twilios_documented_example() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675310",
        "Digits": "1234",
        "From": "+14158675310",
        "To": "+18005551212",
    }
    assert (
        twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params)
        == "GvWf1cFY/Q7PnoempGyD5oXAezc="
    )


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 159 + "€", 2),
        ("a" * 152 + "€" + "a" * 152, 3),
        ("á" * 70, 1),
        ("á" * 71, 2),
        ("🎉" * 35, 1),
        ("🎉" * 36, 2),
    ],
)
def test_twilio_segments_follow_the_rules_values(body: str, segments: int) -> None:
    assert sms_segments(body) == segments


def test_twilio_message_is_created_queued(twilio: TwilioServer) -> None:
    body = "Oakview PT: It\u2019s Patient Recognition Week! Thank you. Reply STOP to opt out."
    reply = send_sms(twilio, {"To": "+15550100001", "From": "+15550109999", "Body": body})

    assert reply.status_code == 201
    message = reply.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert (message["status"], message["to"], message["from"], message["body"]) == (
        "queued",
        "+15550100001",
        "+15550109999",
        body,
    )
    assert (message["num_segments"], message["error_code"], message["direction"]) == ("2", None, "outbound-api")
    sent = twilio.requests[0]
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent.body["Body"] == body


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": "555-0100", "From": "+15550109999", "Body": "hi"}, 21211),
        ({"To": "+15550100001", "Body": "hi"}, 21603),
        ({"To": "+15550100001", "From": "+15550109999"}, 21602),
        ({"To": "+15550100002", "From": "+15550109999", "Body": "hi"}, 21610),
    ],
)
def test_twilio_refuses_invalid_and_opted_out(twilio: TwilioServer, form: dict[str, str], code: int) -> None:
    reply = send_sms(twilio, form)

    assert reply.status_code == 400
    assert reply.json()["code"] == code
    assert twilio.messages == []


def test_twilio_credentials(twilio: TwilioServer) -> None:
    c = twilio.credentials
    account = requests.get(f"{twilio.url}/2010-04-01/Accounts/{c.account_sid}.json", auth=(c.account_sid, c.auth_token))
    wrong = send_sms(
        twilio, {"To": "+15550100001", "From": "+15550109999", "Body": "hi"}, auth=(c.account_sid, "wrong")
    )

    assert account.status_code == 200 and account.json()["sid"] == c.account_sid
    assert wrong.status_code == 401
    assert wrong.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


def test_twilio_throttle_and_server_errors(twilio: TwilioServer) -> None:
    twilio.throttle(retry_after=2)
    twilio.force(Reply(500, {"code": 20500, "message": "Internal Server Error", "status": 500}))

    throttled = send_sms(twilio, {"To": "+15550100001", "From": "+15550109999", "Body": "hi"})
    failed = send_sms(twilio, {"To": "+15550100001", "From": "+15550109999", "Body": "hi"})
    sent = send_sms(twilio, {"To": "+15550100001", "From": "+15550109999", "Body": "hi"})

    assert (throttled.status_code, throttled.json()["code"], throttled.headers["Retry-After"]) == (429, 20429, "2")
    assert failed.status_code == 500
    assert sent.status_code == 201
    assert len(twilio.messages) == 1


def test_twilio_status_callbacks_are_signed_and_report_filtering(twilio: TwilioServer) -> None:
    with CallbackSink() as sink:
        callback = f"{sink.url}/twilio/status"
        ok = send_sms(
            twilio, {"To": "+15550100001", "From": "+15550109999", "Body": "See you", "StatusCallback": callback}
        )
        service = "MG" + "0" * 32
        filtered = send_sms(
            twilio,
            {
                "To": "+15550100001",
                "MessagingServiceSid": service,
                "Body": "FREE TRIAL now",
                "StatusCallback": callback,
            },
        )
        twilio.wait_for_callbacks(6)
        twilio.replay_callbacks(ok.json()["sid"], ["delivered", "queued"])
        received = sink.requests

    by_message: dict[str, list[tuple[str, str | None]]] = {}
    for request in received:
        assert request.path == "/twilio/status"
        assert request.headers["X-Twilio-Signature"] == twilio_signature(
            twilio.credentials.auth_token, callback, request.body
        )
        status = (request.body["MessageStatus"], request.body.get("ErrorCode"))
        by_message.setdefault(request.body["MessageSid"], []).append(status)
    assert [status for status, _ in by_message[ok.json()["sid"]]] == [
        "queued",
        "sent",
        "delivered",
        "delivered",
        "queued",
    ]
    assert by_message[filtered.json()["sid"]] == [("queued", None), ("sent", None), ("undelivered", "30007")]
    c = twilio.credentials
    fetched = requests.get(
        f"{twilio.url}/2010-04-01/Accounts/{c.account_sid}/Messages/{filtered.json()['sid']}.json",
        auth=(c.account_sid, c.auth_token),
        timeout=5,
    ).json()
    assert (fetched["status"], fetched["error_code"]) == ("undelivered", 30007)


# --- Mastodon --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mastodon() -> Iterator[MastodonInstance]:
    with mastodon_instance() as instance:
        yield instance


def test_mastodon_instance_limits(mastodon: MastodonInstance) -> None:
    statuses = requests.get(f"{mastodon.url}/api/v2/instance", timeout=5).json()["configuration"]["statuses"]

    assert (statuses["max_characters"], statuses["characters_reserved_per_url"]) == (500, 23)


def test_mastodon_counts_every_url_as_23_characters(mastodon: MastodonInstance) -> None:
    link = "https://www.oakviewpt.com/blog/desk-ergonomics?" + "utm_source=mastodon&utm_medium=social&" * 3 + "x=1"
    url = f"{mastodon.url}/api/v1/statuses"

    def post(counted: int) -> requests.Response:
        text = "a" * (counted - 24) + " " + link  # counted as Mastodon does: the link is 23
        assert len(text) == counted - 23 + len(link) > 500
        return requests.post(url, headers=mastodon.auth_headers(), data={"status": text}, timeout=5)

    accepted, refused = post(480), post(501)

    assert accepted.status_code == 200 and html.escape(link) in accepted.json()["content"]
    assert refused.status_code == 422
    assert refused.json() == {"error": "Validation failed: Text is too long (maximum is 500 characters)"}


def statuses_count(instance: MastodonInstance) -> int:
    account = requests.get(
        f"{instance.url}/api/v1/accounts/verify_credentials", headers=instance.auth_headers(), timeout=5
    )
    return int(account.json()["statuses_count"])


def test_mastodon_idempotency_key_posts_once(mastodon: MastodonInstance) -> None:
    before = statuses_count(mastodon)
    headers = {**mastodon.auth_headers(), "Idempotency-Key": "item-42:mastodon"}

    first = requests.post(f"{mastodon.url}/api/v1/statuses", headers=headers, data={"status": "PT Month!"}, timeout=5)
    again = requests.post(f"{mastodon.url}/api/v1/statuses", headers=headers, data={"status": "PT Month!"}, timeout=5)

    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert statuses_count(mastodon) == before + 1


def test_mastodon_faults_and_auth(mastodon: MastodonInstance) -> None:
    mastodon.fault("/api/v1/statuses", status=503)
    mastodon.fault("/api/v1/statuses", status=429)
    url = f"{mastodon.url}/api/v1/statuses"

    unavailable = requests.post(url, headers=mastodon.auth_headers(), data={"status": "a"}, timeout=5)
    limited = requests.post(url, headers=mastodon.auth_headers(), data={"status": "a"}, timeout=5)
    posted = requests.post(url, headers=mastodon.auth_headers(), data={"status": "a"}, timeout=5)
    stranger = requests.post(url, headers={"Authorization": "Bearer nope"}, data={"status": "a"}, timeout=5)

    assert unavailable.status_code == 503
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert posted.status_code == 200
    assert stranger.status_code == 401


# --- Google Business Profile -----------------------------------------------------------------------------------------


def gbp_session(server: GbpServer) -> AuthorizedSession:
    account = server.account
    return AuthorizedSession(
        Credentials(
            token=None,
            refresh_token=account.refresh_token,
            token_uri=server.token_uri,
            client_id=account.client_id,
            client_secret=account.client_secret,
        )
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"summary": "Call 312-555-0142 today"}, "phone number"),
        ({"summary": "x" * 1501}, "1500"),
        ({"topicType": "EVENT"}, "event.title"),
        ({"callToAction": {"actionType": "LEARN_MORE"}}, "callToAction.url"),
        ({"media": [{"mediaFormat": "VIDEO", "sourceUrl": "https://a.example/v.mp4"}]}, "PHOTO"),
    ],
)
def test_gbp_refuses_what_google_refuses(change: dict[str, object], problem: str) -> None:
    with GbpServer() as server:
        body = {"languageCode": "en-US", "summary": "Happy PT Month!", "topicType": "STANDARD", **change}
        response = gbp_session(server).post(f"{server.url}{server.account.posts_path}", json=body, timeout=5)

    assert response.status_code == 400 and response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert problem in response.json()["error"]["message"] and server.posts == []


def test_gbp_token_grant_post_and_list_through_google_auth() -> None:
    with GbpServer() as server:
        session = gbp_session(server)
        url = f"{server.url}{server.account.posts_path}"
        created = session.post(url, json={"summary": "Happy PT Month!", "topicType": "STANDARD"}, timeout=5).json()
        listed = session.get(url, params={"pageSize": 1}, timeout=5).json()
        server.revoke()
        with pytest.raises(RefreshError, match="invalid_grant"):
            gbp_session(server).get(url, timeout=5)

    assert created["name"].endswith("/localPosts/1") and created["state"] == "LIVE"
    assert listed == {"localPosts": [created]}
    assert [r.path for r in server.requests][:2] == ["/token", server.account.posts_path]


# --- Bluesky PDS -----------------------------------------------------------------------------------------------------


def test_bluesky_login_post_and_reply_through_atproto() -> None:
    with BlueskyPds() as pds:
        client = Client(base_url=pds.url)
        profile = client.login(pds.account.handle, pds.account.app_password)
        first = client.send_post("Happy PT Month \U0001f499 https://example.com/nptm")
        root = models.create_strong_ref(first)
        reply = client.send_post("2/2", reply_to=models.AppBskyFeedPost.ReplyRef(root=root, parent=root))
        found = client.com.atproto.repo.get_record(
            models.ComAtprotoRepoGetRecord.Params(
                repo=pds.account.did, collection="app.bsky.feed.post", rkey=first.uri[-13:]
            )
        )

    assert profile is not None and profile.did == pds.account.did
    assert found.cid == first.cid and reply.uri != first.uri
    assert [post["value"]["text"] for post in pds.posts] == [
        "Happy PT Month \U0001f499 https://example.com/nptm",
        "2/2",
    ]


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"text": "a" * 301}, "300 graphemes"),
        ({"text": "hi", "facets": [{"index": {"byteStart": 0, "byteEnd": 3}, "features": []}]}, "byte slice"),
        ({"text": "hi", "reply": {"root": {"uri": "at://x/app.bsky.feed.post/3aaa", "cid": "b"}}}, "reply"),
        ({"text": "hi", "embed": {"$type": "app.bsky.embed.images", "images": [{"image": {"ref": {"$link": "b"}}}]}},
         "never uploaded"),
    ],
)  # fmt: skip
def test_bluesky_refuses_what_the_lexicon_refuses(record: dict[str, object], problem: str) -> None:
    with BlueskyPds() as pds:
        session = requests.post(
            f"{pds.url}/xrpc/com.atproto.server.createSession",
            json={"identifier": pds.account.handle, "password": pds.account.app_password},
            timeout=5,
        ).json()
        body = {
            "repo": pds.account.did,
            "collection": "app.bsky.feed.post",
            "record": {"$type": "app.bsky.feed.post", "createdAt": "2026-10-01T09:00:00.000Z", **record},
        }
        response = requests.post(
            f"{pds.url}/xrpc/com.atproto.repo.createRecord",
            json=body,
            headers={"Authorization": f"Bearer {session['accessJwt']}"},
            timeout=5,
        )  # fmt: skip

    assert response.status_code == 400 and problem in response.json()["message"] and pds.posts == []
