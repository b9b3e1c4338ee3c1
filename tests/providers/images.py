"""The practice's web server, for the item images a channel fetches (and uploads, or links to).

``/photo.png`` is a real 640x360 PNG, ``/large.png`` a real PNG over the 1,000,000 bytes Bluesky takes for an image,
``/page.html`` a web page, ``/photo.jpg`` a JPEG (the only image format Instagram publishes); anything else is 404.
"""

from __future__ import annotations

import os
from io import BytesIO

import PIL.Image

from tests.providers import LocalHttpServer, RecordedRequest, Reply


def _encoded(image: PIL.Image.Image, kind: str) -> bytes:
    stream = BytesIO()
    image.save(stream, kind)
    return stream.getvalue()


PNG = _encoded(PIL.Image.new("RGB", (640, 360), (29, 78, 99)), "PNG")
#: Noise does not compress: 700x700 RGB pixels make a PNG of about 1.5 MB.
LARGE_PNG = _encoded(PIL.Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3)), "PNG")
#: A real photo-sized JPEG (the only image format Instagram publishes; Pillow reads it as CareCast checks images).
JPEG = _encoded(PIL.Image.new("RGB", (400, 300), (29, 78, 99)), "JPEG")
#: The networks the image server is on, which a channel must be allowed to fetch from (``image_allow_private``).
LOCAL = ["127.0.0.0/8"]


class ImageHost(LocalHttpServer):
    """Serves ``/photo.png``, ``/large.png``, ``/page.html`` and ``/photo.jpg``; 404 for anything else."""

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path == "/photo.png":
            return Reply(200, PNG, {"Content-Type": "image/png"})
        if request.path == "/large.png":
            return Reply(200, LARGE_PNG, {"Content-Type": "image/png"})
        if request.path == "/page.html":
            return Reply(200, "<html><body>Clinic photos</body></html>", {"Content-Type": "text/html"})
        if request.path == "/photo.jpg":
            return Reply(200, JPEG, {"Content-Type": "image/jpeg"})
        return Reply(404, "not found")
