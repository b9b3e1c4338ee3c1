"""A local X API server speaking the subset tweepy 4.x uses.

Endpoints: ``POST /2/tweets`` (text, reply, media), ``GET /2/users/me``, the v2 media upload
``POST /2/media/upload`` (one-shot JSON: base64 ``media``, ``media_category``, ``media_type``) with
``POST /2/media/metadata`` (alt text), and the v1.1 simple media upload ``POST /1.1/media/upload.json``
(tweepy.API sends it to upload.twitter.com). Requests need OAuth 1.0a user
context carrying the configured consumer key and access token plus an ``oauth_signature`` (the signature itself is
not verified), or the configured bearer token. Every reply carries ``x-rate-limit-*`` headers per user and
endpoint; an exhausted window answers 429. Posting the same text twice within ``DUPLICATE_WINDOW`` answers 403
"duplicate content".

tweepy builds absolute ``https://api.twitter.com`` URLs. The X channel reaches this server through its own
``api_base`` setting (``api_base: http://127.0.0.1:<port>``); a bare tweepy client gets there by mounting the
channel's :class:`carecast_channels.x.ApiBaseAdapter` on its own ``requests`` session, patching nothing::

    with XApiServer() as server:
        client = tweepy.Client(**server.credentials.client_kwargs())
        ApiBaseAdapter(server.url).mount_on(client.session)
        client.create_tweet(text="hello")

Run by hand with ``python -m tests.providers.xapi --port 8027``.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from oauthlib.oauth1.rfc5849.utils import parse_authorization_header

from tests.providers import LocalHttpServer, RecordedRequest, Reply, UploadedFile, serve_by_hand

# Snowflake ids count milliseconds from this epoch (2010-11-04), shifted past 22 bits of worker and sequence.
TWEPOCH_MS = 1288834974657
V2_MEDIA_CATEGORIES = frozenset({"tweet_image", "dm_image", "subtitles"})
V2_IMAGE_TYPES = frozenset({"image/jpeg", "image/bmp", "image/png", "image/webp", "image/pjpeg", "image/tiff"})
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
#: How long the same text is refused as a duplicate: X does not say; a post of last year is not one.
DUPLICATE_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class XCredentials:
    """The credentials the server accepts. Test values, not secrets."""

    consumer_key: str = "test-consumer-key"
    consumer_secret: str = "test-consumer-secret"
    access_token: str = "1000000001-test-access-token"
    access_token_secret: str = "test-access-token-secret"
    bearer_token: str = "test-bearer-token"

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``tweepy.Client`` using OAuth 1.0a user context."""
        return {
            "consumer_key": self.consumer_key,
            "consumer_secret": self.consumer_secret,
            "access_token": self.access_token,
            "access_token_secret": self.access_token_secret,
        }


@dataclass(frozen=True)
class XUser:
    """The account the credentials belong to."""

    id: str = "1000000001"
    name: str = "Oakview Physical Therapy"
    username: str = "oakviewpt"


@dataclass(frozen=True)
class Tweet:
    """A tweet the server accepted."""

    id: str
    text: str
    author_id: str
    in_reply_to_tweet_id: str | None
    media_ids: tuple[str, ...]
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def created_at(self) -> str:
        """``created_at`` as X v2 writes it (``tweet.fields=created_at``): ``2026-12-05T16:20:00.000Z``."""
        return self.created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.created.microsecond // 1000:03d}Z"


#: What ``GET /2/tweets`` answers as each post's ``public_metrics``.
PUBLIC_METRICS = {
    "retweet_count": 4,
    "reply_count": 2,
    "like_count": 19,
    "quote_count": 1,
    "bookmark_count": 3,
    "impression_count": 733,
}


@dataclass
class _Window:
    remaining: int
    reset: int


Route = Callable[[XUser, RecordedRequest], Reply]


class XApiServer(LocalHttpServer):
    """The X API subset tweepy uses, with auth, rate limits and duplicate detection.

    ``rate_limit`` requests per user and endpoint are allowed in each ``rate_window`` seconds (a window opens
    with the first request after the last one reset); the requests beyond are answered 429 and counted in
    ``throttled``.
    """

    def __init__(
        self,
        *,
        credentials: XCredentials | None = None,
        user: XUser | None = None,
        rate_limit: int = 300,
        rate_window: int = 900,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.credentials = credentials or XCredentials()
        self.user = user or XUser()
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self._tweets: dict[str, Tweet] = {}
        self._media: dict[str, UploadedFile] = {}
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._last_id = 0
        self.throttled = 0
        self._media_ids = itertools.count(1_600_000_000_000_000_001)
        self._routes: dict[tuple[str, str], Route] = {
            ("POST", "/2/tweets"): self._create_tweet,
            ("GET", "/2/users/me"): self._me,
            ("GET", f"/2/users/{self.user.id}/tweets"): self._timeline,
            ("GET", "/2/tweets"): self._lookup,
            ("POST", "/1.1/media/upload.json"): self._upload,
            ("POST", "/2/media/upload"): self._upload_v2,
            ("POST", "/2/media/metadata"): self._metadata,
        }
        self._alt_texts: dict[str, str] = {}
        #: Whether post lookups answer 403 "client-not-enrolled", as for an access level without reads.
        self.reads_forbidden = False

    @property
    def tweets(self) -> list[Tweet]:
        """Accepted tweets, oldest first."""
        with self._lock:
            return list(self._tweets.values())

    @property
    def media(self) -> dict[str, UploadedFile]:
        """Uploaded media by media id string."""
        with self._lock:
            return dict(self._media)

    @property
    def alt_texts(self) -> dict[str, str]:
        """Alt text set on uploaded media, by media id string."""
        with self._lock:
            return dict(self._alt_texts)

    def add_tweet(self, text: str, created: datetime) -> Tweet:
        """A post of the account made at ``created`` (by hand, or long ago), older than every post so far."""
        with self._lock:
            tweet = Tweet(self._next_id(), text, self.user.id, None, (), created)
            self._tweets = {tweet.id: tweet, **self._tweets}
        return tweet

    def start_over(self) -> None:
        """Forget every tweet and rate-limit window: the next request finds the server as new (a benchmark's
        next run posts the same texts again, in a window of its own)."""
        with self._lock:
            self._tweets.clear()
            self._windows.clear()

    # --- auth and rate limits --------------------------------------------------------------------------------

    def _principal(self, request: RecordedRequest) -> str:
        """The credential a request presents, as ``oauth:<access token>`` or ``bearer:<token>``; "" if neither."""
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme == "Bearer":
            return f"bearer:{rest}"
        if scheme == "OAuth":
            params = {key: urllib.parse.unquote(value) for key, value in parse_authorization_header(header)}
            if params.get("oauth_consumer_key") == self.credentials.consumer_key and params.get("oauth_signature"):
                return f"oauth:{params.get('oauth_token')}"
        return ""

    def _authenticated(self, request: RecordedRequest) -> bool:
        accepted = {f"oauth:{self.credentials.access_token}", f"bearer:{self.credentials.bearer_token}"}
        return self._principal(request) in accepted

    def _window(self, request: RecordedRequest) -> _Window:
        """The rate-limit window of the request's credential and endpoint, renewed once it has reset."""
        key = (self._principal(request), request.method, request.path)
        now = int(time.time())
        window = self._windows.get(key)
        if window is None or now >= window.reset:
            window = self._windows[key] = _Window(self.rate_limit, now + self.rate_window)
        return window

    # --- dispatch ----------------------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        """Authenticate, apply the rate limit, then run the endpoint."""
        route = self._routes.get((request.method, request.path))
        if not self._authenticated(request):
            return _error(request, 401, "Unauthorized", "Unauthorized", v1=(32, "Could not authenticate you."))
        if route is None:
            return _error(request, 404, "Not Found Error", f"No route for {request.method} {request.path}")
        with self._lock:
            window = self._window(request)
            if window.remaining <= 0:
                self.throttled += 1
                return _error(request, 429, "Too Many Requests", "Too Many Requests", v1=(88, "Rate limit exceeded"))
            window.remaining -= 1
            return route(self.user, request)

    def finish(self, request: RecordedRequest, reply: Reply) -> Reply:
        """Add the caller's rate-limit headers under any headers the reply already has."""
        with self._lock:
            window = self._window(request)
            headers = {
                "x-rate-limit-limit": str(self.rate_limit),
                "x-rate-limit-remaining": str(window.remaining),
                "x-rate-limit-reset": str(window.reset),
            }
        return Reply(reply.status, reply.body, {**headers, **reply.headers})

    # --- endpoints (called with the lock held) -----------------------------------------------------------------

    def _create_tweet(self, user: XUser, request: RecordedRequest) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        text = body.get("text")
        reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        media_ids = tuple(str(m) for m in (body.get("media") or {}).get("media_ids", ()))
        if not isinstance(text, str) and not media_ids:
            return _invalid("text", "Either text or media is required.")
        if unknown := [m for m in media_ids if m not in self._media]:
            return _invalid("media.media_ids", f"Your media IDs are invalid: {', '.join(unknown)}.")
        if reply_to is not None and str(reply_to) not in self._tweets:
            return _error(
                request, 403, "Forbidden", "You attempted to reply to a Tweet that is deleted or not visible to you."
            )
        since = datetime.now(UTC) - DUPLICATE_WINDOW
        if text and any(
            t.text == text and t.author_id == user.id and t.created >= since for t in self._tweets.values()
        ):
            return _error(request, 403, "Forbidden", DUPLICATE_DETAIL)
        tweet = Tweet(self._next_id(), text or "", user.id, None if reply_to is None else str(reply_to), media_ids)
        self._tweets[tweet.id] = tweet
        return Reply(201, {"data": {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}})

    def _lookup(self, user: XUser, request: RecordedRequest) -> Reply:
        """``GET /2/tweets?ids=...&tweet.fields=public_metrics``: found posts in ``data``, the others in ``errors``."""
        if self.reads_forbidden:
            return Reply(
                403,
                {
                    "client_id": "30000001",
                    "reason": "client-not-enrolled",
                    "title": "Client Forbidden",
                    "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and "
                    "tokens from a Twitter developer App that is attached to a Project.",
                    "type": "https://api.twitter.com/2/problems/client-forbidden",
                    "required_enrollment": "Appropriate Level of API Access",
                },
            )
        ids = [tweet_id for tweet_id in request.query.get("ids", "").split(",") if tweet_id]
        fields = request.query.get("tweet.fields", "").split(",")
        data, errors = [], []
        for tweet_id in ids:
            tweet = self._tweets.get(tweet_id)
            if tweet is None:
                errors.append(
                    {
                        "value": tweet_id,
                        "detail": f"Could not find tweet with ids: [{tweet_id}].",
                        "title": "Not Found Error",
                        "resource_type": "tweet",
                        "parameter": "ids",
                        "resource_id": tweet_id,
                        "type": "https://api.twitter.com/2/problems/resource-not-found",
                    }
                )
                continue
            found: dict[str, Any] = {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}
            if "public_metrics" in fields:
                found["public_metrics"] = dict(PUBLIC_METRICS)
            data.append(found)
        return Reply(200, {"data": data, **({"errors": errors} if errors else {})} if data else {"errors": errors})

    def _me(self, user: XUser, request: RecordedRequest) -> Reply:
        return Reply(200, {"data": {"id": user.id, "name": user.name, "username": user.username}})

    def _timeline(self, user: XUser, request: RecordedRequest) -> Reply:
        """The user's tweets, newest first (``max_results``, 5 to 100)."""
        mine = [tweet for tweet in reversed(self._tweets.values()) if tweet.author_id == user.id]
        shown = mine[: int(request.query.get("max_results", 10))]
        timed = "created_at" in request.query.get("tweet.fields", "").split(",")
        data = [
            {
                "id": tweet.id,
                "text": tweet.text,
                "edit_history_tweet_ids": [tweet.id],
                **({"created_at": tweet.created_at} if timed else {}),
            }
            for tweet in shown
        ]
        meta = {"result_count": len(data), **({"newest_id": data[0]["id"]} if data else {})}
        return Reply(200, {"data": data, "meta": meta} if data else {"meta": meta})

    def _upload(self, user: XUser, request: RecordedRequest) -> Reply:
        media = request.body.get("media") if isinstance(request.body, dict) else None
        if not isinstance(media, UploadedFile):
            # Chunked uploads (command=INIT/APPEND/FINALIZE) and media_data are not part of this fake.
            return _error(
                request, 400, "Invalid Request", "media file part is required", v1=(38, "media parameter is missing.")
            )
        media_id = next(self._media_ids)
        self._media[str(media_id)] = media
        return Reply(
            200,
            {
                "media_id": media_id,
                "media_id_string": str(media_id),
                "size": len(media.content),
                "expires_after_secs": 86400,
                "image": {"image_type": media.content_type},
            },
        )

    def _upload_v2(self, user: XUser, request: RecordedRequest) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        category, media_type = body.get("media_category"), body.get("media_type")
        try:
            content = base64.b64decode(str(body.get("media")), validate=True)
        except (binascii.Error, ValueError):
            return _invalid("media", "media must be base64-encoded binary.")
        if not content:
            return _invalid("media", "media is required.")
        if category not in V2_MEDIA_CATEGORIES:
            return _invalid("media_category", f"media_category must be one of {sorted(V2_MEDIA_CATEGORIES)}.")
        if media_type not in V2_IMAGE_TYPES:
            return _invalid("media_type", f"media_type must be one of {sorted(V2_IMAGE_TYPES)}.")
        media_id = str(next(self._media_ids))
        self._media[media_id] = UploadedFile(None, str(media_type), content)
        return Reply(
            200,
            {
                "data": {
                    "id": media_id,
                    "media_key": f"3_{media_id}",
                    "size": len(content),
                    "expires_after_secs": 86400,
                    "image": {"image_type": media_type},
                }
            },
        )

    def _metadata(self, user: XUser, request: RecordedRequest) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        media_id = str(body.get("id"))
        alt = ((body.get("metadata") or {}).get("alt_text") or {}).get("text")
        if media_id not in self._media:
            return _invalid("id", f"Your media ID is invalid: {media_id}.")
        if not isinstance(alt, str) or not 0 < len(alt) <= 1000:
            return _invalid("metadata.alt_text.text", "alt text must have 1 to 1000 characters.")
        self._alt_texts[media_id] = alt
        return Reply(200, {"data": {"associated_metadata": True}})

    def _next_id(self) -> str:
        candidate = (int(time.time() * 1000) - TWEPOCH_MS) << 22
        self._last_id = max(candidate, self._last_id + 1)
        return str(self._last_id)


def _error(request: RecordedRequest, status: int, title: str, detail: str, v1: tuple[int, str] | None = None) -> Reply:
    """An error in the shape of the API version the request addressed (v2 problem JSON or v1.1 ``errors``)."""
    if request.path.startswith("/1.1/"):
        code, message = v1 or (status, detail)
        return Reply(status, {"errors": [{"code": code, "message": message}]})
    return Reply(status, {"title": title, "detail": detail, "type": "about:blank", "status": status})


def _invalid(parameter: str, message: str) -> Reply:
    return Reply(
        400,
        {
            "errors": [{"parameters": {parameter: []}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        },
    )


def _banner(server: XApiServer) -> str:
    c = server.credentials
    return (
        f"X API fake on {server.url}\n"
        f"consumer_key={c.consumer_key} consumer_secret={c.consumer_secret}\n"
        f"access_token={c.access_token} access_token_secret={c.access_token_secret}\n"
        f"bearer_token={c.bearer_token}"
    )


if __name__ == "__main__":
    serve_by_hand("Local X API v2 fake", lambda port: XApiServer(port=port), _banner)
