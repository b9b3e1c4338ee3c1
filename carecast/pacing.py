"""Paced sending: a sender never goes faster than its provider allows (a channel's ``rate: 50/s``).

A provider that counts messages per second answers 429 to the ones beyond its limit; a sender paced just under it
sends as fast as it may and is never refused. The pacer is a token bucket holding one token: calls are spaced evenly,
with no burst, so no one-second window of the provider's ever sees more than the rate.
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
    """Spaces calls ``per_second`` apart: :meth:`wait` returns when the next call may go. Raises nothing."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1 / per_second
        self._clock, self._sleep = clock, sleep
        self._next = clock()

    def wait(self) -> None:
        """Sleep until the next call is due, then book the slot after it. A sender slower than the rate never
        waits and builds no credit for a burst later."""
        now = self._clock()
        if self._next > now:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval
