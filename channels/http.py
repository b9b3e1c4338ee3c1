"""What the channels that speak HTTP to a provider (SMS, X, Mastodon, GBP, Bluesky) share: which ``requests`` failures
left the provider untouched, how long a provider asked to wait, waiting out a rate limit within a budget, and where a
channel's credentials may be sent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import requests
from pydantic import AnyUrl
from urllib3.exceptions import MaxRetryError, NewConnectionError

from carecast.plugin import PublishError, now_utc
from carecast.plugin.media import internal_host_reason

log = logging.getLogger(__name__)
T = TypeVar("T")
Url = TypeVar("Url", bound=AnyUrl)


def nothing_sent(exc: requests.RequestException) -> bool:
    """Whether ``exc`` ended a request before any of it can have reached the provider.

    Only a connection that was never made qualifies: it timed out or was refused (or its host did not resolve).
    A read timeout or a connection lost once the request was written may follow the provider acting on it, so a
    request without an idempotency key must not be sent again after one.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    # requests reports a refused connection as ConnectionError(MaxRetryError(reason=NewConnectionError)).
    cause = exc.args[0] if exc.args else None
    return (
        isinstance(exc, requests.ConnectionError)
        and isinstance(cause, MaxRetryError)
        and isinstance(cause.reason, NewConnectionError)
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait after a 429 or 503: ``Retry-After`` (seconds or an HTTP date), else ``X-RateLimit-Reset`` (an
    ISO 8601 time from Mastodon, epoch seconds from some proxies); None when neither can be read."""
    wait, reset = headers.get("Retry-After", "").strip(), headers.get("X-RateLimit-Reset", "").strip()
    if wait.isdigit():
        return float(wait)
    moment: datetime | None = None
    for parse, value in ((parsedate_to_datetime, wait), (_epoch, reset), (datetime.fromisoformat, reset)):
        with suppress(TypeError, ValueError, OverflowError, OSError):
            moment = parse(value)
            break
    if moment is None or moment.tzinfo is None:
        return None
    return max(0.0, (moment - now_utc()).total_seconds())


def wait_out_rate_limits(send: Callable[[int], T], budget: float, channel: str) -> T:
    """``send(attempt)`` (attempt 1, 2, ...), sent again after the wait a rate limit asks for while the wait fits in
    ``budget`` seconds (all attempts together).

    ``send`` raises PublishError with ``retry_after`` only for an answer that says nothing was done (a 429): that
    request can be repeated. Raises that PublishError once its wait no longer fits, any other error at once.
    """
    deadline = time.monotonic() + budget
    attempt = 1
    while True:
        try:
            return send(attempt)
        except PublishError as exc:
            wait = exc.retry_after
            if not exc.transient or wait is None or time.monotonic() + wait > deadline:
                raise
            log.warning("%s: %s; trying again in %.1fs", channel, exc.reason, wait)
            time.sleep(wait)
            attempt += 1


def https_or_loopback(url: Url) -> Url:
    """``url`` when credentials may travel to it: https to a public host, or a local test server on 127.0.0.1.

    Raises ValueError (a pydantic validator's refusal) for any other URL.
    """
    if url.scheme != "https" and url.host != "127.0.0.1":
        raise ValueError(f"an https:// URL (http only for 127.0.0.1), not {url}")
    # A credential sent to a link-local or private address could go to a cloud metadata service or an intranet.
    if url.host != "127.0.0.1" and (reason := internal_host_reason(url.host or "")):
        raise ValueError(f"a public host (or a test server on 127.0.0.1), not {url}: {reason}")
    return url


def _epoch(value: str) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)
