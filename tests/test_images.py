"""Fetching an item's image for upload (carecast.images): the real type and size, addresses, limits."""

from __future__ import annotations

import io
import ipaddress

import PIL.Image
import pytest

from carecast.errors import ImageError
from carecast.images import fetch_image
from tests.providers import LocalHttpServer, RecordedRequest, Reply


def picture(width: int, height: int, kind: str = "JPEG") -> bytes:
    stream = io.BytesIO()
    PIL.Image.new("RGB", (width, height), (200, 120, 80)).save(stream, kind)
    return stream.getvalue()


LOCAL = [ipaddress.ip_network("127.0.0.0/8")]


class Pictures(LocalHttpServer):
    """``/photo.jpg`` a photo; ``/icon.png`` 64 px; ``/big.jpg`` a photo larger than the test's limit; ``/fake.jpg``
    text said to be a JPEG; ``/moved`` redirects to the photo."""

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path == "/photo.jpg":
            return Reply(200, picture(800, 600), {"Content-Type": "image/jpeg"})
        if request.path == "/icon.png":
            return Reply(200, picture(64, 64, "PNG"), {"Content-Type": "image/png"})
        if request.path == "/big.jpg":
            return Reply(200, picture(2400, 1600) + b"\0" * 50_000, {"Content-Type": "image/jpeg"})
        if request.path == "/fake.jpg":
            return Reply(200, "<html>not a picture</html>", {"Content-Type": "image/jpeg"})
        if request.path == "/moved":
            return Reply(302, "", {"Location": "/photo.jpg"})
        return Reply(404, "not found")


@pytest.fixture(scope="module")
def server() -> Pictures:
    with Pictures() as pictures:
        yield pictures


def test_a_photo_is_fetched_with_its_real_type_and_size(server: Pictures) -> None:
    image = fetch_image(f"{server.url}/moved", timeout=5, allow_private=LOCAL)
    assert (image.media_type, image.width, image.height) == ("image/jpeg", 800, 600)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/icon.png", "64x64 pixels, too small"),
        ("/fake.jpg", "not an image that can be read"),
        ("/big.jpg", "larger than 40000 bytes"),
        ("/missing.jpg", "HTTP 404"),
    ],
)
def test_what_is_no_usable_photo_is_refused_with_its_reason(server: Pictures, path: str, why: str) -> None:
    with pytest.raises(ImageError, match=why):
        fetch_image(f"{server.url}{path}", timeout=5, allow_private=LOCAL, max_bytes=40_000)


def test_private_and_loopback_addresses_are_refused_unless_allowed(server: Pictures) -> None:
    for allowed in (False, [ipaddress.ip_network("10.0.0.0/8")]):
        with pytest.raises(ImageError, match=r"127\.0\.0\.1 is a loopback address"):
            fetch_image(f"{server.url}/photo.jpg", timeout=5, allow_private=allowed)
    for url in ("ftp://example.com/a.jpg", "file:///etc/passwd"):
        with pytest.raises(ImageError, match="only http and https"):
            fetch_image(url, timeout=5)
