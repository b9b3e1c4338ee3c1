"""What the channels that speak HTTP to a provider (SMS, X, Mastodon) share about ``requests`` failures."""

from __future__ import annotations

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError


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
