"""Media and network helpers a channel may use (public plugin API): an item's image fetched and checked before it
is uploaded, and whether a host is internal (a provider URL must not point into the practice's network)."""

from __future__ import annotations

from carecast.fetch import internal_host_reason
from carecast.images import fetch_image

__all__ = ["fetch_image", "internal_host_reason"]
