"""A local LinkedIn API for the LinkedIn channel: the Posts and Images APIs of an Organization page.

Endpoints: ``POST /rest/posts`` (201 with the post's URN in ``x-restli-id``), ``POST
/rest/images?action=initializeUpload`` and the ``PUT`` of the image bytes to the ``uploadUrl`` it answers, and
``GET /rest/organizationAcls?q=roleAssignee``, ``GET /rest/organizationalEntityShareStatistics`` (403 when
``statistics_allowed`` is False). Every ``/rest`` call needs ``Authorization: Bearer`` with the
configured token (401 otherwise, or once ``expire_token()`` was called, as LinkedIn answers an expired token) and
the ``LinkedIn-Version`` header (400 without). A post must name the page as author, an article its source and
title, a thumbnail or media an image uploaded here; commentary over 3,000 characters is refused (400), and the
same commentary twice within ``DUPLICATE_WINDOW`` is a duplicate (422).

Commentary is read as LinkedIn reads "little text": ``\\x`` is a literal ``x``, ``{hashtag|\\#|tag}`` is the
hashtag ``#tag``, and an unescaped reserved character cuts the post there (:func:`shown_text`): a test compares
what readers would see with what was meant. :func:`throttled` is LinkedIn's 429 for ``force``.

Run by hand with ``python -m tests.providers.linkedin --port 8030``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.providers import LocalHttpServer, RecordedRequest, Reply, serve_by_hand

LINKEDIN_TOKEN = "AQVoakviewLinkedInToken0000"
ORGANIZATION_ID = "10000001"
AUTHOR = f"urn:li:organization:{ORGANIZATION_ID}"
#: A share's lifetime ``totalShareStatistics`` as LinkedIn reports them.
SHARE_STATISTICS = {
    "uniqueImpressionsCount": 188,
    "shareCount": 2,
    "engagement": 0.0851,
    "clickCount": 11,
    "likeCount": 9,
    "impressionCount": 247,
    "commentCount": 1,
}
RESERVED = set("\\|{}@[]()<>#*_~")
LITTLE_HASHTAG = re.compile(r"\{hashtag\|\\#\|((?:\\.|[^\\{}|])*)\}")


def shown_text(commentary: str) -> str:
    """What LinkedIn shows of ``commentary``: escapes resolved, hashtag templates as ``#tag``, and the text cut at
    the first unescaped reserved character."""
    shown, position = [], 0
    while position < len(commentary):
        hashtag = LITTLE_HASHTAG.match(commentary, position)
        if hashtag:
            shown.append("#" + re.sub(r"\\(.)", r"\1", hashtag.group(1)))
            position = hashtag.end()
            continue
        character = commentary[position]
        if character == "\\" and position + 1 < len(commentary):
            shown.append(commentary[position + 1])
            position += 2
            continue
        if character in RESERVED:
            break
        shown.append(character)
        position += 1
    return "".join(shown)


def linkedin_error(status: int, message: str, code: str | None = None, **headers: str) -> Reply:
    body: dict[str, Any] = {"status": status, "message": message}
    if code is not None:
        body["code"] = code
    return Reply(status, body, headers)


def throttled(retry_after: int | None = None) -> Reply:
    """LinkedIn's answer once a daily quota is spent (429); ``Retry-After`` only when given."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    message = "Resource level throttle APPLICATION DAY limit for calls to this resource is reached."
    return linkedin_error(429, message, **headers)


#: How long the same commentary is refused as a duplicate: LinkedIn does not say; a post of last year is not one.
DUPLICATE_WINDOW = timedelta(days=1)


def _times(created: datetime) -> dict[str, int]:
    """A post's ``createdAt``, ``publishedAt`` and ``lastModifiedAt``: epoch milliseconds."""
    millis = int(created.timestamp() * 1000)
    return {"createdAt": millis, "publishedAt": millis, "lastModifiedAt": millis}


@dataclass(frozen=True)
class LinkedInPost:
    urn: str
    body: dict[str, Any]
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def shown(self) -> str:
        return shown_text(str(self.body.get("commentary", "")))


class LinkedInServer(LocalHttpServer):
    """The LinkedIn API subset the channel uses (see the module docstring)."""

    def __init__(self, *, access_token: str = LINKEDIN_TOKEN, port: int = 0) -> None:
        super().__init__(port)
        self.access_token = access_token
        self.token_expired = False
        self.posts: list[LinkedInPost] = []
        self.images: dict[str, bytes | None] = {}
        self._ids = itertools.count(7_200_000_000_000_000_001)
        #: False: the token lacks ``r_organization_social``; share statistics answer 403 ``ACCESS_DENIED``.
        self.statistics_allowed = True

    def expire_token(self) -> None:
        """From now on the token is answered as expired (401)."""
        self.token_expired = True

    def add_post(self, commentary: str, created: datetime) -> LinkedInPost:
        """A post of the page made at ``created`` (by hand, or long ago), older than every post so far."""
        body = {"author": AUTHOR, "commentary": commentary, "visibility": "PUBLIC", "lifecycleState": "PUBLISHED"}
        post = LinkedInPost(f"urn:li:share:{next(self._ids)}", body, created)
        with self._lock:
            self.posts.insert(0, post)
        return post

    def handle(self, request: RecordedRequest) -> Reply:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return linkedin_error(401, "Invalid access token", "INVALID_ACCESS_TOKEN")
        if self.token_expired:
            return linkedin_error(401, "The token used in the request has expired", "EXPIRED_ACCESS_TOKEN")
        if request.method == "PUT" and request.path.startswith("/dms-uploads/"):
            return self._upload(request)
        if not request.headers.get("LinkedIn-Version"):
            message = "A version must be present. Please specify a version by adding the LinkedIn-Version header."
            return linkedin_error(400, message, "VERSION_MISSING")
        body = request.body if isinstance(request.body, dict) else {}
        with self._lock:
            if (request.method, request.path) == ("POST", "/rest/posts"):
                return self._post(body)
            if (request.method, request.path) == ("POST", "/rest/images"):
                return self._initialize_upload(request, body)
            if (request.method, request.path) == ("GET", "/rest/organizationAcls"):
                return self._acls()
            if (request.method, request.path) == ("GET", "/rest/posts") and request.query.get("q") == "author":
                return self._by_author(request.query.get("author", ""), int(request.query.get("count", 10)))
            if (request.method, request.path) == ("GET", "/rest/organizationalEntityShareStatistics"):
                return self._share_statistics(request)
        return linkedin_error(404, f"No resource for {request.method} {request.path}", "RESOURCE_NOT_FOUND")

    def _post(self, body: dict[str, Any]) -> Reply:
        if body.get("author") != AUTHOR:
            return linkedin_error(403, f"Not enough permissions to post as {body.get('author')}", "ACCESS_DENIED")
        commentary = body.get("commentary")
        if not isinstance(commentary, str) or body.get("lifecycleState") != "PUBLISHED":
            return linkedin_error(400, "commentary and lifecycleState PUBLISHED are required", "MISSING_FIELD")
        if len(commentary) > 3000:
            return linkedin_error(400, "commentary is longer than 3000 characters", "FIELD_LENGTH_TOO_LONG")
        content = body.get("content") or {}
        article, media = content.get("article"), content.get("media")
        if article is not None and not (article.get("source") and article.get("title")):
            return linkedin_error(400, "an article needs its source and title", "MISSING_FIELD")
        images = [(article or {}).get("thumbnail"), (media or {}).get("id")]
        if any(urn is not None and self.images.get(urn) is None for urn in images):
            return linkedin_error(400, "the image is not uploaded", "INVALID_CONTENT")
        since = datetime.now(UTC) - DUPLICATE_WINDOW
        if any(post.body.get("commentary") == commentary and post.created >= since for post in self.posts):
            return linkedin_error(422, f"Content is a duplicate of {self.posts[0].urn}", "DUPLICATE_POST")
        post = LinkedInPost(f"urn:li:share:{next(self._ids)}", body)
        self.posts.append(post)
        return Reply(201, None, {"x-restli-id": post.urn})

    def _by_author(self, author: str, count: int) -> Reply:
        """The author's posts, newest first (``GET /rest/posts?q=author``)."""
        mine = [post for post in reversed(self.posts) if post.body.get("author") == author][:count]
        elements = [{**post.body, "id": post.urn, **_times(post.created)} for post in mine]
        return Reply(200, {"elements": elements, "paging": {"count": count, "start": 0}})

    def _initialize_upload(self, request: RecordedRequest, body: dict[str, Any]) -> Reply:
        owner = (body.get("initializeUploadRequest") or {}).get("owner")
        if request.query.get("action") != "initializeUpload" or owner != AUTHOR:
            return linkedin_error(400, "initializeUpload for the page's own images only", "INVALID_REQUEST")
        number = next(self._ids)
        urn = f"urn:li:image:C4E10AQ{number}"
        self.images[urn] = None
        value = {"uploadUrlExpiresAt": 1_900_000_000_000, "uploadUrl": f"{self.url}/dms-uploads/{number}", "image": urn}
        return Reply(200, {"value": value})

    def _upload(self, request: RecordedRequest) -> Reply:
        urn = f"urn:li:image:C4E10AQ{request.path.rsplit('/', 1)[-1]}"
        with self._lock:
            if urn not in self.images:
                return linkedin_error(404, "unknown upload", "RESOURCE_NOT_FOUND")
            self.images[urn] = request.raw
        return Reply(201)

    def _share_statistics(self, request: RecordedRequest) -> Reply:
        """``q=organizationalEntity`` with ``shares=List(...)``: each known share's lifetime statistics."""
        if not self.statistics_allowed:
            message = (
                "Not enough permissions to access: organizationalEntityShareStatistics.FINDER-organizationalEntity"
            )
            return linkedin_error(403, message, "ACCESS_DENIED")
        if request.query.get("q") != "organizationalEntity" or request.query.get("organizationalEntity") != AUTHOR:
            return linkedin_error(400, "q=organizationalEntity for the page is required", "INVALID_REQUEST")
        listed = request.query.get("shares", "")
        if not (listed.startswith("List(") and listed.endswith(")")):
            return linkedin_error(400, "shares must be a Rest.li 2.0 List(...)", "INVALID_REQUEST")
        known = {post.urn for post in self.posts}
        elements = [
            {"totalShareStatistics": dict(SHARE_STATISTICS), "share": urn, "organizationalEntity": AUTHOR}
            for urn in listed[5:-1].split(",")
            if urn in known
        ]
        return Reply(200, {"paging": {"count": 10, "start": 0, "links": []}, "elements": elements})

    def _acls(self) -> Reply:
        element = {"roleAssignee": "urn:li:person:oakview-admin", "state": "APPROVED", "role": "ADMINISTRATOR"}
        return Reply(200, {"elements": [{**element, "organization": AUTHOR}], "paging": {"count": 10, "start": 0}})


def _banner(server: LinkedInServer) -> str:
    return f"LinkedIn API fake on {server.url}\norganization_id={ORGANIZATION_ID} access_token={server.access_token}"


if __name__ == "__main__":
    serve_by_hand("Local LinkedIn Posts and Images API fake", lambda port: LinkedInServer(port=port), _banner)
