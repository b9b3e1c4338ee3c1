"""The HTTP side of a channel's inbound routes: the :class:`Request` a route's handler receives and the
:class:`Response` it answers, whatever server received it.

Part of :mod:`carecast.channel`, which re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, parse_qsl


@dataclass(frozen=True)
class Request:
    """One inbound HTTP request as a route's handler sees it, whatever server received it.

    ``url`` is the URL the caller called, as a provider would sign it: the server's ``public_url`` (behind a proxy
    or tunnel) with the request's path and query, else the URL the request itself names. ``headers`` are keyed in
    lower case. The body was read in full, within the server's size limit, before the handler runs.
    """

    method: str
    path: str
    query: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""

    def form(self) -> dict[str, str]:
        """The form-encoded body as a dict; blank values kept, since providers sign them too."""
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def query_value(self, name: str) -> str:
        """The first value of query parameter ``name``; "" when absent."""
        return parse_qs(self.query).get(name, [""])[0]


@dataclass(frozen=True)
class Response:
    """What a route answers; ``note`` goes in the request's log line, so it never holds personal data."""

    status: HTTPStatus
    body: bytes = b""
    content_type: str | None = "text/plain; charset=utf-8"
    note: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: HTTPStatus, message: str, note: str = "") -> Response:
        return cls(status, f"{message}\n".encode(), note=note or message)
