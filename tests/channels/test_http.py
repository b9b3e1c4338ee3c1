"""The HTTP helpers the SMS, X and Mastodon channels share: Retry-After and where credentials may be sent."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from pydantic import HttpUrl

from carecast_channels.http import https_or_loopback, nothing_sent, retry_after

HEADERS_AT: dict[str, Callable[[datetime], dict[str, str]]] = {
    "seconds": lambda now: {"Retry-After": "120"},
    "http-date": lambda now: {"Retry-After": format_datetime(now + timedelta(seconds=90), usegmt=True)},
    "iso reset": lambda now: {"X-RateLimit-Reset": (now + timedelta(seconds=60)).isoformat()},
    "epoch reset": lambda now: {"X-RateLimit-Reset": str(int(now.timestamp()) + 30)},
    "none": lambda now: {},
    "unreadable": lambda now: {"Retry-After": "soon"},
}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("seconds", 120), ("http-date", 90), ("iso reset", 60), ("epoch reset", 30), ("none", None), ("unreadable", None)],
)
def test_retry_after_reads_what_the_instance_said(kind: str, expected: float | None) -> None:
    wait = retry_after(HEADERS_AT[kind](datetime.now(UTC)))
    assert wait == expected if expected is None else wait is not None and expected - 2 <= wait <= expected


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://mastodon.social", True),
        ("http://127.0.0.1:8027", True),
        ("http://localhost:8027", False),
        ("http://x-gateway.example.com", False),
    ],
)
def test_credentials_travel_over_https_or_to_loopback_only(url: str, allowed: bool) -> None:
    if allowed:
        assert https_or_loopback(HttpUrl(url)) == HttpUrl(url)
    else:
        with pytest.raises(ValueError, match=r"http only for 127\.0\.0\.1"):
            https_or_loopback(HttpUrl(url))


def test_a_refused_connection_sent_nothing() -> None:
    with socket.socket() as probe:  # a port just freed: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(requests.ConnectionError) as refused:
        requests.post(f"http://127.0.0.1:{closed}/", data={"To": "+13125550117"}, timeout=5)
    assert nothing_sent(refused.value)
    assert not nothing_sent(requests.ReadTimeout("the answer was lost"))
