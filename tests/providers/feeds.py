"""A feed host: serves the feeds registered with it, each with an ETag, and 304 to a matching ``If-None-Match``
(what a WordPress site behind a cache does). Each request is recorded, so a test counts the polls of a run."""

from __future__ import annotations

import hashlib

from carecast.testing.providers import LocalHttpServer, RecordedRequest, Reply


def etag(feed: bytes) -> str:
    """The ETag the feed host gives a feed."""
    return '"' + hashlib.sha256(feed).hexdigest()[:16] + '"'


class FeedServer(LocalHttpServer):
    """Serves ``feeds`` (path -> the feed's bytes; set or change one at any time), 404 for any other path."""

    def __init__(self) -> None:
        super().__init__()
        self.feeds: dict[str, bytes] = {}

    def handle(self, request: RecordedRequest) -> Reply:
        body = self.feeds.get(request.path)
        if body is None:
            return Reply(404, {"error": "no such feed"})
        validator = etag(body)
        if request.headers.get("If-None-Match") == validator:
            return Reply(304, b"", {"ETag": validator})
        return Reply(200, body, {"ETag": validator, "Content-Type": "application/rss+xml"})
