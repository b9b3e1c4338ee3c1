"""A local Meta Graph API for the Facebook Page and Instagram channels.

Endpoints (under ``/<version>/``, the version the channel calls): ``POST /{page-id}/feed`` (message, link) and
``POST /{page-id}/photos`` (url, message, alt_text_custom) for Page posts, ``GET /{page-id}/feed`` (newest first,
``limit``) to read them back; ``POST /{ig-user-id}/media`` (image_url,
caption, alt_text), ``GET /{container-id}?fields=status_code`` and ``POST /{ig-user-id}/media_publish``
(creation_id) for Instagram's content publishing; ``GET /{media-id}?fields=permalink``; ``GET /{page-id}`` and
``GET /{ig-user-id}``; ``GET /debug_token?input_token=...``; ``GET /{post-id}/insights`` and
``/{media-id}/insights`` (``retired_metrics`` answer code 100, ``withheld_metrics`` code 10); and the batch
request ``POST /`` (``batch`` form field) that wraps any of the GETs. Bodies are read as JSON or form fields,
the token from ``Authorization: Bearer`` (or ``OAuth``) or an ``access_token`` field.

Like Meta, it fetches every image it is given by URL (Page photos at once, Instagram containers while they
process): an image that cannot be fetched refuses the photo (code 324) or puts the container in ``ERROR``; an
Instagram image must be a JPEG. A container answers ``IN_PROGRESS`` to its first ``polls_until_finished`` looks.
An unknown token answers code 190; ``expire_token()`` makes the known one answer code 190, subcode 463, as an
expired session does. :func:`rate_limited` builds Meta's rate-limit answer (codes 4/17/32/613 with the usage
headers) for ``force``.

Run by hand with ``python -m tests.providers.graph --port 8029``.
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.providers import LocalHttpServer, RecordedRequest, Reply, serve_by_hand

PAGE_TOKEN = "EAAGoakviewPageToken0000"
PAGE_ID = "104857600000001"
IG_USER_ID = "17841400000000001"
JPEG_MAGIC = b"\xff\xd8\xff"
#: A Page post's lifetime insights, as ``/{post-id}/insights`` answers them.
PAGE_INSIGHTS: dict[str, Any] = {
    "post_impressions_unique": 412,
    "post_clicks": 23,
    "post_reactions_by_type_total": {"like": 17, "love": 4},
}
#: An Instagram post's lifetime insights (``/{media-id}/insights``).
MEDIA_INSIGHTS: dict[str, Any] = {"reach": 268, "likes": 31, "comments": 5, "saved": 3, "shares": 2, "views": 540}


@dataclass
class Container:
    """An Instagram media container: what it was made with, and its processing state."""

    id: str
    image_url: str
    caption: str
    alt_text: str | None
    polls_left: int
    status_code: str = "IN_PROGRESS"
    status: str = ""
    image: bytes = b""


@dataclass(frozen=True)
class PagePost:
    """A post the Page made: ``kind`` is ``feed`` or ``photos``; ``image`` what was fetched from ``url``."""

    id: str
    kind: str
    fields: dict[str, Any]
    image: bytes = b""
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class InstagramMedia:
    id: str
    container: Container
    permalink: str = field(init=False)

    def __post_init__(self) -> None:
        self.permalink = f"https://www.instagram.com/p/CcAre{self.id[-6:]}/"


def graph_error(status: int, code: int, message: str, subcode: int | None = None, **headers: str) -> Reply:
    """An error in the Graph API's shape."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return Reply(status, {"error": error}, headers)


def rate_limited(code: int = 32, regain_minutes: int = 7) -> Reply:
    """Meta's answer when a rate limit is reached: code 4 (app) with ``X-App-Usage``; 17, 32, 613 or 80001+ (user,
    Page, business use case) with ``X-Business-Use-Case-Usage`` saying when access comes back."""
    if code == 4:
        usage = {"X-App-Usage": json.dumps({"call_count": 100, "total_cputime": 40, "total_time": 52})}
        return graph_error(403, 4, "(#4) Application request limit reached", **usage)
    record = {"type": "pages", "call_count": 100, "total_cputime": 8, "total_time": 9}
    record["estimated_time_to_regain_access"] = regain_minutes
    usage = {"X-Business-Use-Case-Usage": json.dumps({PAGE_ID: [record]})}
    return graph_error(400, code, f"(#{code}) Calls to this api have exceeded the rate limit.", **usage)


class GraphApiServer(LocalHttpServer):
    """The Graph API subset the Facebook and Instagram channels use (see the module docstring)."""

    def __init__(
        self,
        *,
        access_token: str = PAGE_TOKEN,
        expires_at: int = 0,
        polls_until_finished: int = 1,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.access_token = access_token
        self.expires_at = expires_at
        self.polls_until_finished = polls_until_finished
        self.token_expired = False
        self.posts: list[PagePost] = []
        self.containers: dict[str, Container] = {}
        self.media: dict[str, InstagramMedia] = {}
        self._ids = itertools.count(1)
        #: Metrics answered with Meta's "not a valid insights metric" (code 100), as a retired one is.
        self.retired_metrics: set[str] = {"impressions", "post_impressions"}
        #: Metrics answered with code 10, as when the token lacks ``read_insights`` / ``instagram_manage_insights``.
        self.withheld_metrics: set[str] = set()

    def expire_token(self) -> None:
        """From now on the token answers code 190, subcode 463: "Session has expired"."""
        self.token_expired = True

    def add_post(self, message: str, created: datetime) -> PagePost:
        """A feed post the Page made at ``created`` (by hand, or long ago), older than every post so far."""
        post = PagePost(f"{PAGE_ID}_{next(self._ids)}", "feed", {"message": message}, created=created)
        self.posts.insert(0, post)
        return post

    # --- dispatch ----------------------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        fields = {**request.query, **(request.body if isinstance(request.body, dict) else {})}
        token = _bearer(request.headers.get("Authorization", "")) or fields.pop("access_token", "")
        if token != self.access_token:
            return graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if self.token_expired:
            message = "Error validating access token: Session has expired on Sunday, 29-Nov-26 10:00:00 PST."
            return graph_error(400, 190, message, subcode=463)
        node = request.path.strip("/").split("/", 1)[-1] if request.path.count("/") > 1 else ""
        with self._lock:
            return self.route(request.method, node, fields)

    def route(self, method: str, node: str, fields: dict[str, Any]) -> Reply:
        """Answer one call to ``node`` (the path after the version) with ``fields`` (query and body)."""
        if (method, node) == ("POST", "") and "batch" in fields:
            return self._batch(fields)
        if (method, node) == ("GET", "debug_token"):
            return self._debug_token(fields.get("input_token", ""))
        if (method, node) == ("POST", f"{PAGE_ID}/feed"):
            return self._feed(fields)
        if (method, node) == ("GET", f"{PAGE_ID}/feed"):
            return self._page_feed(int(fields.get("limit", 25)))
        if (method, node) == ("POST", f"{PAGE_ID}/photos"):
            return self._photo(fields)
        if (method, node) == ("POST", f"{IG_USER_ID}/media"):
            return self._container(fields)
        if (method, node) == ("POST", f"{IG_USER_ID}/media_publish"):
            return self._publish(fields)
        if method == "GET" and node.endswith("/insights"):
            return self._insights(node.removesuffix("/insights"), str(fields.get("metric", "")))
        if method == "GET":
            return self._read(node)
        return graph_error(400, 100, f"Unsupported {method.lower()} request to {node!r}")

    def _batch(self, fields: dict[str, Any]) -> Reply:
        answers = []
        for call in json.loads(fields["batch"]):
            split = urllib.parse.urlsplit(call["relative_url"])
            query = dict(urllib.parse.parse_qsl(split.query))
            reply = self.route(call.get("method", "GET").upper(), split.path.strip("/"), query)
            answers.append({"code": reply.status, "body": json.dumps(reply.body)})
        return Reply(200, answers)

    # --- endpoints (called with the lock held) -----------------------------------------------------------------

    def _debug_token(self, input_token: str) -> Reply:
        valid = input_token == self.access_token and not self.token_expired
        data = {
            "app_id": "900000000000001",
            "type": "PAGE",
            "application": "CareCast",
            "expires_at": self.expires_at,
            "is_valid": valid,
            "scopes": ["pages_manage_posts", "pages_read_engagement", "instagram_basic", "instagram_content_publish"],
            "profile_id": PAGE_ID,
        }
        return Reply(200, {"data": data})

    def _feed(self, fields: dict[str, Any]) -> Reply:
        if not fields.get("message") and not fields.get("link"):
            return graph_error(400, 100, "(#100) Missing message or attachment")
        post = PagePost(f"{PAGE_ID}_{next(self._ids)}", "feed", fields)
        self.posts.append(post)
        return Reply(200, {"id": post.id})

    def _page_feed(self, limit: int) -> Reply:
        """The Page's posts, newest first (photo posts too, as Facebook's feed shows them)."""
        newest = list(reversed(self.posts))[:limit]
        data = [
            {
                "id": post.id,
                "message": post.fields.get("message", ""),
                "created_time": post.created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
            }
            for post in newest
        ]
        return Reply(200, {"data": data, "paging": {}})

    def _photo(self, fields: dict[str, Any]) -> Reply:
        image = _fetch(str(fields.get("url", "")))
        if image is None:
            return graph_error(400, 324, "(#324) Missing or invalid image file")
        number = next(self._ids)
        post = PagePost(f"{PAGE_ID}_{number}", "photos", fields, image)
        self.posts.append(post)
        return Reply(200, {"id": str(900 + number), "post_id": post.id})

    def _container(self, fields: dict[str, Any]) -> Reply:
        caption = str(fields.get("caption", ""))
        if not fields.get("image_url"):
            return graph_error(400, 100, "The parameter image_url is required.")
        if len(caption) > 2200:
            return graph_error(400, 100, "Param caption must be at most 2200 characters long.")
        container = Container(
            f"1790{next(self._ids):011d}",
            str(fields["image_url"]),
            caption,
            fields.get("alt_text"),
            self.polls_until_finished,
        )
        image = _fetch(container.image_url)
        if image is None or not image.startswith(JPEG_MAGIC):
            container.status_code, container.status = "ERROR", "Error: Media download has failed. (2207052)"
        else:
            container.image = image
        self.containers[container.id] = container
        return Reply(200, {"id": container.id})

    def _publish(self, fields: dict[str, Any]) -> Reply:
        container = self.containers.get(str(fields.get("creation_id", "")))
        if container is None:
            return graph_error(400, 100, "Invalid parameter: creation_id")
        if container.status_code != "FINISHED":
            return graph_error(400, 9007, "The media is not ready for publishing, please wait for a moment", 2207027)
        container.status_code = "PUBLISHED"
        media = InstagramMedia(f"1790{next(self._ids):011d}", container)
        self.media[media.id] = media
        return Reply(200, {"id": media.id})

    def _read(self, node: str) -> Reply:
        if node == PAGE_ID:
            return Reply(200, {"id": PAGE_ID, "name": "Oakview Physical Therapy"})
        if node == IG_USER_ID:
            return Reply(200, {"id": IG_USER_ID, "username": "oakviewpt"})
        if node in self.media:
            return Reply(200, {"id": node, "permalink": self.media[node].permalink})
        container = self.containers.get(node)
        if container is None:
            return graph_error(400, 100, f"Unsupported get request. Object with ID '{node}' does not exist")
        if container.status_code == "IN_PROGRESS":
            container.polls_left -= 1
            if container.polls_left < 0:
                container.status_code = "FINISHED"
        return Reply(200, {"id": node, "status_code": container.status_code, "status": container.status})

    def _insights(self, node: str, metric: str) -> Reply:
        """``GET /{post-id}/insights`` (a Page post) or ``/{media-id}/insights`` (Instagram), lifetime values."""
        known = PAGE_INSIGHTS if any(post.id == node for post in self.posts) else MEDIA_INSIGHTS
        if node not in self.media and known is MEDIA_INSIGHTS:
            return graph_error(400, 100, f"Unsupported get request. Object with ID '{node}' does not exist")
        names = [name for name in metric.split(",") if name]
        for name in names:
            if name in self.withheld_metrics:
                return graph_error(403, 10, "(#10) Application does not have permission for this action")
            if name in self.retired_metrics or name not in known:
                return graph_error(400, 100, f"(#100) The value must be a valid insights metric: {name}")
        data = [
            {
                "name": name,
                "period": "lifetime",
                "values": [{"value": known[name]}],
                "title": name.replace("_", " ").title(),
                "id": f"{node}/insights/{name}/lifetime",
            }
            for name in names
        ]
        return Reply(200, {"data": data})

    @property
    def published(self) -> list[InstagramMedia]:
        """Instagram posts published, oldest first."""
        with self._lock:
            return list(self.media.values())


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token if scheme in ("Bearer", "OAuth") else ""


def _fetch(url: str) -> bytes | None:
    """The image at ``url`` as Meta's fetcher gets it; None when it cannot."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read())
    except (OSError, ValueError):
        return None


def _banner(server: GraphApiServer) -> str:
    return (
        f"Graph API fake on {server.url}\npage_id={PAGE_ID} ig_user_id={IG_USER_ID} access_token={server.access_token}"
    )


if __name__ == "__main__":
    serve_by_hand("Local Meta Graph API fake", lambda port: GraphApiServer(port=port), _banner)
