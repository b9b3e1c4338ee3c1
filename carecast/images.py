"""Fetch an item's image to upload it to a provider: only from public addresses, within limits, and checked.

An item's image URL comes from an untrusted feed. :func:`fetch_image` refuses hosts that resolve to private,
loopback, link-local or otherwise reserved addresses (a feed must not make CareCast probe the practice's own
network), unless the channel's config names the host (a local test server, an intranet CDN); it follows at most a
few redirects, each checked the same way; it stops reading past ``max_bytes`` or after ``timeout`` seconds in all;
and it opens what arrived with Pillow, so the picture's real type and size are known, not the ones the server
claims: only JPEG, PNG, WebP and GIF of at least :data:`carecast.html.MIN_IMAGE_WIDTH` pixels wide are accepted.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass
from io import BytesIO
from urllib.parse import urljoin, urlsplit

import PIL.Image
import requests

from carecast.errors import ImageError
from carecast.html import MIN_IMAGE_WIDTH

#: X's limit for an image, and a sane bound for any provider.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 3
#: Pillow's format name → the media type providers are told.
PHOTO_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchedImage:
    """An image as it really is: its bytes, the media type Pillow found, and its size in pixels."""

    url: str
    content: bytes
    media_type: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return "." + self.media_type.split("/")[1].replace("jpeg", "jpg")


def fetch_image(
    url: str,
    *,
    timeout: float,
    allowed_hosts: Collection[str] = (),
    max_bytes: int = MAX_IMAGE_BYTES,
    session: requests.Session | None = None,
) -> FetchedImage:
    """Download the image at ``url`` and check it is a photo CareCast may upload.

    ``allowed_hosts`` are host names or addresses that may resolve to private or loopback addresses.
    Raises ImageError naming the URL and the reason: not http(s), a private address, a redirect loop, an HTTP
    error, too big, too slow, not an image Pillow can read, not a photo type, or narrower than a picture.
    """
    deadline = time.monotonic() + timeout
    http = session or requests.Session()
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        _check_address(url, current, allowed_hosts)
        try:
            response = http.get(current, timeout=timeout, stream=True, allow_redirects=False)
        except requests.RequestException as exc:
            raise ImageError(url, f"cannot download it ({type(exc).__name__})") from exc
        with response:
            if response.is_redirect and response.headers.get("Location"):
                current = urljoin(current, response.headers["Location"])
                continue
            if response.status_code != 200:
                raise ImageError(url, f"HTTP {response.status_code}")
            content = _read(url, response, max_bytes, deadline)
        return _inspect(url, content)
    raise ImageError(url, f"more than {MAX_REDIRECTS} redirects")


def _check_address(url: str, target: str, allowed_hosts: Collection[str]) -> None:
    """Raise ImageError unless ``target`` is http(s) to a public address, or its host is allowed."""
    parts = urlsplit(target)
    host = parts.hostname or ""
    if parts.scheme not in {"http", "https"} or not host:
        raise ImageError(url, "not an http(s) URL")
    if host in allowed_hosts:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError) as exc:
        raise ImageError(url, f"its host {host!r} does not resolve") from exc
    for address in addresses:
        ip = ipaddress.ip_address(str(address).split("%")[0])
        if not ip.is_global:
            raise ImageError(url, f"its host {host!r} is on a private or local address; not fetched")


def _read(url: str, response: requests.Response, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ImageError(url, f"{int(declared)} bytes, more than {max_bytes}")
    content = bytearray()
    try:
        for chunk in response.iter_content(_CHUNK):
            content += chunk
            if len(content) > max_bytes:
                raise ImageError(url, f"more than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise ImageError(url, "took too long to download")
    except requests.RequestException as exc:
        raise ImageError(url, f"the download broke off ({type(exc).__name__})") from exc
    return bytes(content)


def _inspect(url: str, content: bytes) -> FetchedImage:
    try:
        with PIL.Image.open(BytesIO(content)) as image:
            image.verify()  # reads the whole file: a truncated or forged one fails here
            kind, (width, height) = image.format, image.size
    except (PIL.Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(url, f"not an image that can be read ({type(exc).__name__})") from exc
    media_type = PHOTO_TYPES.get(kind or "")
    if media_type is None:
        raise ImageError(url, f"a {kind} file, not a photo (JPEG, PNG, WebP or GIF)")
    if width < MIN_IMAGE_WIDTH:
        raise ImageError(url, f"{width}x{height} pixels, too small to be a picture (an icon or a pixel)")
    return FetchedImage(url=url, content=content, media_type=media_type, width=width, height=height)
