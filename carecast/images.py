"""Fetch an item's image to upload it to a provider, and check that it is the photo it claims to be.

An item's image URL comes from an untrusted feed, so it is fetched like a feed (:func:`carecast.fetch.fetch`): a
total deadline, a size limit, http(s) only, and no connection to a private, loopback or link-local address unless
the channel's config allows it (a local test server, an intranet CDN). What arrived is then opened with Pillow, so
the picture's real type and size are known, not the ones the server claims: only JPEG, PNG, WebP and GIF of at
least :data:`carecast.html.MIN_IMAGE_WIDTH` pixels wide are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

import PIL.Image

from carecast.errors import FetchError, ImageError
from carecast.fetch import AllowPrivate, fetch
from carecast.html import MIN_IMAGE_WIDTH

#: X's limit for an image, and a sane bound for any provider.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
#: Pillow's format name → the media type providers are told.
PHOTO_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
_HEADERS = {"User-Agent": "CareCast/0.1 (image fetch)", "Accept": "image/*"}


@dataclass(frozen=True)
class FetchedImage:
    """An image as it really is: its bytes, the media type Pillow found, and its size in pixels."""

    url: str
    content: bytes
    media_type: str
    width: int
    height: int


def fetch_image(
    url: str, *, timeout: float, allow_private: AllowPrivate = False, max_bytes: int = MAX_IMAGE_BYTES
) -> FetchedImage:
    """Download the image at ``url`` within ``timeout`` seconds in all and check it is a photo CareCast may upload.

    Raises ImageError naming the URL and the reason: what :func:`carecast.fetch.fetch` refuses (not http(s), a
    private address not allowed, too slow, too big, too many redirects, unreachable), an HTTP error, not an image
    Pillow can read, not a photo type, or narrower than a picture.
    """
    try:
        fetched = fetch(url, headers=_HEADERS, deadline=timeout, max_bytes=max_bytes, allow_private=allow_private)
    except FetchError as exc:
        raise ImageError(url, exc.reason) from exc
    if fetched.status != 200:
        raise ImageError(url, f"HTTP {fetched.status}")
    return _inspect(url, fetched.body)


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
