"""The practice's web server, for the item images a channel downloads (and uploads, or links to).

``/photo.png`` is the smallest valid PNG (what tweepy sniffs to name the media type), ``/large.png`` a PNG over the
1,000,000 bytes Bluesky takes for a thumbnail, ``/page.html`` a web page; anything else is 404.
"""

from __future__ import annotations

from tests.providers import LocalHttpServer, RecordedRequest, Reply

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000050001a5f645400000000049454e44ae426082"
)
LARGE_PNG = PNG + bytes(1_000_001)


class ImageHost(LocalHttpServer):
    """Serves ``/photo.png``, ``/large.png`` and ``/page.html``; 404 for anything else."""

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path == "/photo.png":
            return Reply(200, PNG, {"Content-Type": "image/png"})
        if request.path == "/large.png":
            return Reply(200, LARGE_PNG, {"Content-Type": "image/png"})
        if request.path == "/page.html":
            return Reply(200, "<html><body>Clinic photos</body></html>", {"Content-Type": "text/html"})
        return Reply(404, "not found")
