"""A local Bluesky PDS speaking the XRPC endpoints the ``atproto`` client uses to post.

Endpoints, as the AT Protocol lexicons define them (all under ``/xrpc/``):

- ``com.atproto.server.createSession`` (identifier and app password) answers ``accessJwt`` and ``refreshJwt`` (real
  JWTs, ``exp`` in them: the client reads it) with the account's ``did`` and ``handle``; a wrong password is
  ``401 AuthenticationRequired``. ``com.atproto.server.refreshSession`` (Bearer refresh token) renews them.
- ``app.bsky.actor.getProfile`` answers the account's profile (the client reads it at login).
- ``com.atproto.repo.uploadBlob`` takes raw bytes and answers a blob reference (``$link`` a CID of the bytes).
- ``com.atproto.repo.createRecord`` of an ``app.bsky.feed.post`` checks what the PDS and the lexicon check: the repo
  is the account's, a given ``rkey`` is a TID and not taken (``400 InvalidRequest``), the text has at most 300
  graphemes, facets address byte ranges inside the text's UTF-8, a reply's root and parent are records of the repo
  with their CIDs, an embed's blobs were uploaded and a thumbnail or image is at most 1,000,000 bytes. It answers
  ``uri`` and ``cid``.
- ``com.atproto.repo.getRecord`` answers a record, or ``400 RecordNotFound``.
- ``app.bsky.feed.getPosts`` answers the post views of the URIs it holds, with ``counts`` set by the test.

Authenticated calls need a live access token: an expired or unknown one is ``400 ExpiredToken`` / ``401
InvalidToken``, as the reference PDS answers. ``throttle(n, reset_in)`` answers the next ``n`` record creations with
Bluesky's rate limit: 429 ``RateLimitExceeded`` with ``RateLimit-Limit``, ``-Remaining``, ``-Reset`` (epoch seconds)
and ``-Policy``. ``expire_sessions()`` makes every token issued so far expired.

Run by hand with ``python -m tests.providers.bluesky --port 8030``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import regex

from carecast_channels.bluesky import tid
from tests.providers import LocalHttpServer, RecordedRequest, Reply, serve_by_hand

TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
GRAPHEME = regex.compile(r"\X")
MAX_GRAPHEMES = 300
MAX_IMAGE_BYTES = 1_000_000
POST = "app.bsky.feed.post"


@dataclass(frozen=True)
class BlueskyAccount:
    """The account the PDS hosts and its app password. Test values, not secrets."""

    handle: str = "oakviewpt.bsky.social"
    did: str = "did:plc:oakviewpttest0000000000"
    app_password: str = "abcd-efgh-ijkl-mnop"


@dataclass
class _Repo:
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # rkey -> {"uri", "cid", "value"}
    blobs: dict[str, int] = field(default_factory=dict)  # cid -> size


def _cid(data: bytes) -> str:
    """A content id for ``data`` (a CIDv1-looking base32 string; the client checks only its syntax)."""
    return "bafyrei" + base64.b32encode(hashlib.sha256(data).digest()).decode().lower().rstrip("=")[:52]


class BlueskyPds(LocalHttpServer):
    """One account's PDS: sessions, profile, blobs and ``app.bsky.feed.post`` records."""

    def __init__(self, account: BlueskyAccount | None = None, port: int = 0) -> None:
        super().__init__(port)
        self.account = account or BlueskyAccount()
        self.repo = _Repo()
        self._key = secrets.token_bytes(32)
        self._generation = 0  # tokens of an earlier generation have expired
        self._throttled: list[float] = []
        self._state = threading.Lock()
        #: ``app.bsky.feed.getPosts`` counts by post URI, e.g. ``{"likeCount": 3}``.
        self.counts: dict[str, dict[str, int]] = {}

    @property
    def posts(self) -> list[dict[str, Any]]:
        """The records of the repo, oldest first: ``uri``, ``cid`` and ``value`` (the record)."""
        with self._state:
            return list(self.repo.records.values())

    def throttle(self, times: int = 1, reset_in: float = 1.0) -> None:
        """Answer the next ``times`` record creations with 429, the window resetting ``reset_in`` seconds later."""
        with self._state:
            self._throttled += [reset_in] * times

    def expire_sessions(self) -> None:
        """Every access and refresh token issued so far has expired."""
        with self._state:
            self._generation += 1

    # -- tokens ----------------------------------------------------------------------------------------------------

    def _jwt(self, scope: str, lifetime: int) -> str:
        now = int(time.time())
        claims = {"scope": scope, "sub": self.account.did, "iat": now, "exp": now + lifetime, "aud": "did:web:pds"}
        claims["jti"] = f"{self._generation}.{secrets.token_hex(8)}"
        encode = lambda part: base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")  # noqa: E731
        signing = encode({"typ": "at+jwt", "alg": "HS256"}) + b"." + encode(claims)
        signature = base64.urlsafe_b64encode(hmac.new(self._key, signing, "sha256").digest()).rstrip(b"=")
        return (signing + b"." + signature).decode()

    def _claims(self, request: RecordedRequest, scope: str) -> dict[str, Any] | Reply:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        signing, _, signature = token.rpartition(".")
        expected = base64.urlsafe_b64encode(hmac.new(self._key, signing.encode(), "sha256").digest()).rstrip(b"=")
        if not signing or not hmac.compare_digest(expected, signature.encode()):
            return _error(401, "InvalidToken", "Token could not be verified")
        payload = signing.split(".")[1]
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if claims["exp"] < time.time() or int(claims["jti"].split(".")[0]) < self._generation:
            return _error(400, "ExpiredToken", "Token has expired")
        if claims["scope"] != scope:
            return _error(400, "InvalidToken", "Bad token scope")
        return claims

    def _session(self) -> Reply:
        return Reply(
            200,
            {
                "did": self.account.did,
                "handle": self.account.handle,
                "accessJwt": self._jwt("com.atproto.appPass", 7200),
                "refreshJwt": self._jwt("com.atproto.refresh", 90 * 86400),
                "active": True,
            },
        )

    # -- endpoints -------------------------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        method = request.path.removeprefix("/xrpc/")
        if method == "com.atproto.server.createSession":
            body = request.body if isinstance(request.body, dict) else {}
            if body.get("identifier") not in (self.account.handle, self.account.did) or (
                body.get("password") != self.account.app_password
            ):
                return _error(401, "AuthenticationRequired", "Invalid identifier or password")
            return self._session()
        if method == "com.atproto.server.refreshSession":
            claims = self._claims(request, "com.atproto.refresh")
            return claims if isinstance(claims, Reply) else self._session()
        claims = self._claims(request, "com.atproto.appPass")
        if isinstance(claims, Reply):
            return claims
        if method == "app.bsky.actor.getProfile":
            profile = {"did": self.account.did, "handle": self.account.handle, "displayName": "Oakview PT"}
            return Reply(200, {**profile, "followersCount": 42, "postsCount": len(self.repo.records)})
        if method == "com.atproto.repo.uploadBlob":
            data = request.raw
            cid = _cid(data)
            with self._state:
                self.repo.blobs[cid] = len(data)
            mime = request.headers.get("Content-Type", "application/octet-stream")
            return Reply(200, {"blob": {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(data)}})
        if method == "com.atproto.repo.getRecord":
            record = self._stored(request.query.get("repo"), request.query.get("collection"), request.query.get("rkey"))
            if record is None:
                return _error(400, "RecordNotFound", f"Could not locate record: {request.query.get('rkey')}")
            return Reply(200, record)
        if method == "app.bsky.feed.getPosts":
            return self._get_posts([value for name, value in request.query_pairs if name == "uris"])
        if method == "com.atproto.repo.createRecord":
            with self._state:
                if self._throttled:
                    reset_in = self._throttled.pop(0)
                    return _rate_limited(reset_in)
            return self._create(request.body if isinstance(request.body, dict) else {})
        return _error(501, "MethodNotImplemented", f"Method Not Implemented: {method}")

    def _get_posts(self, uris: list[str]) -> Reply:
        """``app.bsky.feed.getPosts``: the post views of the URIs this repo holds (others are left out, as the
        AppView leaves out deleted posts), each with its counts (``counts``, default none)."""
        profile = {"did": self.account.did, "handle": self.account.handle}
        with self._state:
            records = {record["uri"]: record for record in self.repo.records.values()}
            views = [
                {
                    "uri": uri,
                    "cid": records[uri]["cid"],
                    "author": profile,
                    "record": records[uri]["value"],
                    "indexedAt": records[uri]["value"].get("createdAt", ""),
                    **{"replyCount": 0, "repostCount": 0, "likeCount": 0, "quoteCount": 0},
                    **self.counts.get(uri, {}),
                }
                for uri in uris
                if uri in records
            ]
        return Reply(200, {"posts": views})

    def _stored(self, repo: str | None, collection: str | None, rkey: str | None) -> dict[str, Any] | None:
        if repo not in (self.account.did, self.account.handle) or collection != POST:
            return None
        with self._state:
            return self.repo.records.get(str(rkey))

    def _create(self, body: dict[str, Any]) -> Reply:
        if body.get("repo") not in (self.account.did, self.account.handle):
            return _error(400, "InvalidRequest", "Could not find repo")
        if body.get("collection") != POST:
            return _error(400, "InvalidRequest", "Unsupported collection")
        rkey = body.get("rkey") or tid(datetime.now(UTC), 0)
        record = body.get("record")
        problem = None if TID.match(rkey) else "Invalid record key (a TID)"
        problem = problem or (self._invalid(record) if isinstance(record, dict) else "Missing record")
        with self._state:
            if problem is None and rkey in self.repo.records:
                problem = "Record already exists"
            if problem is not None:
                return _error(400, "InvalidRequest", problem)
            uri = f"at://{self.account.did}/{POST}/{rkey}"
            cid = _cid(json.dumps(record, sort_keys=True).encode())
            self.repo.records[rkey] = {"uri": uri, "cid": cid, "value": record}
        return Reply(200, {"uri": uri, "cid": cid, "validationStatus": "valid"})

    def _invalid(self, record: dict[str, Any]) -> str | None:
        """What the PDS would refuse in a post record, or None."""
        text = record.get("text")
        if record.get("$type") != POST or not isinstance(text, str) or not record.get("createdAt"):
            return "Record/$type, text and createdAt are required"
        if len(GRAPHEME.findall(text)) > MAX_GRAPHEMES or len(text.encode()) > 3000:
            return f"Record/text must not be longer than {MAX_GRAPHEMES} graphemes"
        size = len(text.encode())
        for facet in record.get("facets", []):
            index = facet.get("index", {})
            if not 0 <= index.get("byteStart", -1) < index.get("byteEnd", -1) <= size:
                return "Record/facets: a byte slice is outside the text"
        reply = record.get("reply")
        if reply is not None:
            for ref in (reply.get("root"), reply.get("parent")):
                known = self.repo.records.get(str((ref or {}).get("uri", "")).rsplit("/", 1)[-1])
                if known is None or known["cid"] != ref.get("cid"):
                    return "Record/reply: root and parent must be records of this repo with their cid"
        return self._invalid_embed(record.get("embed"))

    def _invalid_embed(self, embed: dict[str, Any] | None) -> str | None:
        if embed is None:
            return None
        blobs = []
        if embed.get("$type") == "app.bsky.embed.external":
            external = embed.get("external", {})
            if not str(external.get("uri", "")).startswith("http") or "title" not in external:
                return "Record/embed/external needs uri, title and description"
            blobs = [external["thumb"]] if "thumb" in external else []
        elif embed.get("$type") == "app.bsky.embed.images":
            blobs = [image.get("image") for image in embed.get("images", [])]
        else:
            return "Record/embed: unsupported embed type"
        for blob in blobs:
            size = self.repo.blobs.get(str((blob or {}).get("ref", {}).get("$link")))
            if size is None:
                return "Record/embed: a blob that was never uploaded"
            if size > MAX_IMAGE_BYTES:
                return "BlobTooLarge: an image over 1000000 bytes"
        return None


def _rate_limited(reset_in: float) -> Reply:
    headers = {
        "RateLimit-Limit": "5000",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(int(time.time() + reset_in + 0.999)),
        "RateLimit-Policy": "5000;w=3600",
    }
    return Reply(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, headers)


def _error(status: int, error: str, message: str) -> Reply:
    """An XRPC error body."""
    return Reply(status, {"error": error, "message": message})


def _banner(server: BlueskyPds) -> str:
    return (
        f"Bluesky PDS fake on {server.url}\nhandle={server.account.handle} app_password={server.account.app_password}"
    )


if __name__ == "__main__":
    serve_by_hand(
        "Local Bluesky PDS (XRPC: sessions, blobs, post records)", lambda port: BlueskyPds(port=port), _banner
    )
