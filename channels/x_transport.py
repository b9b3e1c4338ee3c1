"""The transport under tweepy for the X channel: where its requests go (``api_base``) and how long they may take.

:class:`ApiBaseAdapter` sends the calls tweepy makes to ``api.twitter.com`` and ``upload.twitter.com`` to another base
URL (an API gateway, or a local test server) after OAuth 1.0a has signed them for X's own URL; :class:`TimeoutSession`
gives every request a timeout, which tweepy never sets.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

#: The URL prefixes tweepy sends to: API v2 and v1.1 on api.twitter.com, the v1.1 media upload on upload.twitter.com.
X_HOSTS = ("https://api.twitter.com/", "https://upload.twitter.com/")


class ApiBaseAdapter(HTTPAdapter):
    """Sends requests meant for X's hosts to ``base_url`` instead, keeping their path (after the base's) and query.

    tweepy builds absolute ``https://api.twitter.com`` URLs and signs them; mounted on its session, this adapter
    changes where each request goes only after the OAuth 1.0a signature was computed over X's own URL, which is
    the URL a gateway forwards to. The original host goes along as ``X-Forwarded-Host``.
    """

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base = urllib.parse.urlsplit(base_url)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` to the base URL; raises what ``HTTPAdapter.send`` raises (requests.RequestException)."""
        rerouted = request.copy()
        original = urllib.parse.urlsplit(request.url or "")
        path = self.base.path.rstrip("/") + original.path
        rerouted.url = urllib.parse.urlunsplit((self.base.scheme, self.base.netloc, path, original.query, ""))
        rerouted.headers["X-Forwarded-Host"] = original.netloc
        return super().send(rerouted, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)

    def mount_on(self, session: requests.Session) -> requests.Session:
        """Mount this adapter on ``session`` for X's API and upload hosts; returns the session."""
        for prefix in X_HOSTS:
            session.mount(prefix, self)
        return session


class TimeoutSession(requests.Session):
    """A session whose requests give up after ``timeout`` seconds unless the caller set its own.

    tweepy.Client sends without a timeout: a hung connection would hold the worker forever instead of failing the
    attempt as transient.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send with the session's timeout; raises what ``requests.Session.send`` raises."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)
