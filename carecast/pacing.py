"""Paced sending: a sender never goes faster than its provider allows (a channel's ``rate: 50/s``).

A provider that counts messages per second answers 429 to the ones beyond its limit; a sender paced at it sends as
fast as it may and is never refused. The pacer is a token bucket refilled at the rate and holding ``burst`` tokens (a
tenth of a second's worth by default): calls are spaced evenly, and a sender held up by one slow answer catches up
with the few it missed instead of losing them for good, while in no interval ``t`` does it send more than
``rate * t + burst``, which a provider allowing ``rate`` per second (a bucket of one second's worth) always takes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

_RATE = re.compile(r"^\s*(?P<count>\d+(?:\.\d+)?)\s*/\s*(?P<unit>s|sec|second|min|minute)\s*$")
_SECONDS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60}


def per_second(rate: str) -> float:
    """``"50/s"`` or ``"30/min"`` as messages per second.

    Raises ValueError (pydantic reports it at config load) for any other spelling or a rate of zero.
    """
    match = _RATE.match(rate)
    if match is None or float(match["count"]) <= 0:
        raise ValueError(f"a rate such as '50/s' or '30/min', above zero, not {rate!r}")
    return float(match["count"]) / _SECONDS[match["unit"]]


class Pacer:
    """Lets calls through at ``per_second``: :meth:`wait` returns when the next one may go. Raises nothing."""

    def __init__(
        self,
        per_second: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = per_second
        self.burst = max(1.0, per_second / 10) if burst is None else max(1.0, burst)
        self._clock, self._sleep = clock, sleep
        self._tokens, self._at = 1.0, clock()

    def wait(self) -> None:
        """Take a token, first sleeping until one has accrued; a long pause builds up at most ``burst`` of them."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            short = (1 - self._tokens) / self.rate
            self._sleep(short)
            self._at += short
            self._tokens = 1.0
        self._tokens -= 1
