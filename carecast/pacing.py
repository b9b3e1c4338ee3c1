"""Paced sending: a sender never goes faster than its provider allows (a channel's ``rate``, e.g. ``50/s``).

A rate is ``N/unit`` or ``N/<k><unit>`` with unit ``s``, ``min`` or ``h`` (``50/s``, ``30/min``, ``100/15min``):
at most N requests in any such window, as providers state their limits. A provider answers 429 to the requests
beyond its limit; a sender paced at it sends as fast as it may and is never refused.

The pacer is a token bucket refilled at N per window and holding ``burst`` tokens (a tenth of the window's worth,
at least one; it starts full): calls are spaced evenly, a sender held up by one slow answer catches up with the few
it missed, and a short thread of posts goes at once. A bucket alone would let ``N + burst`` through in one window,
so the pacer also remembers the last N calls and holds the next until the oldest is a window old: in no window
does it send more than N, whether the provider counts in a sliding window, fixed windows, or a bucket of its own.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable

_RATE = re.compile(r"^\s*(?P<count>\d+)\s*/\s*(?P<every>\d+)?\s*(?P<unit>s|sec|second|min|minute|h|hour)\s*$")
_SECONDS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(rate: str) -> tuple[int, float]:
    """``"50/s"``, ``"30/min"``, ``"100/15min"`` or ``"1000/h"`` as (requests, per seconds).

    Raises ValueError (pydantic reports it at config load, naming the key) for any other spelling or zero.
    """
    match = _RATE.match(rate)
    every = 1 if match is None or match["every"] is None else int(match["every"])
    if match is None or int(match["count"]) <= 0 or every <= 0:
        raise ValueError(f"a rate such as '50/s', '30/min', '100/15min' or '1000/h', above zero, not {rate!r}")
    return int(match["count"]), float(every * _SECONDS[match["unit"]])


class Pacer:
    """Lets calls through at ``requests`` per ``seconds``: :meth:`wait` returns when the next one may go.

    Shared by the threads of one sender (a lock orders them). Raises nothing.
    """

    def __init__(
        self,
        requests: int,
        seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.requests, self.seconds = requests, seconds
        self.rate = requests / seconds
        self.burst = max(1.0, requests / 10)
        self._clock, self._sleep = clock, sleep
        self._tokens, self._at = self.burst, clock()
        self._recent: deque[float] = deque(maxlen=requests)
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Take a token, first sleeping until one has accrued and the last ``requests`` calls are a window old."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            short = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            if len(self._recent) == self.requests:
                short = max(short, self._recent[0] + self.seconds - now)
            if short > 0:
                self._sleep(short)
                self._tokens = min(self.burst, self._tokens + short * self.rate)
                self._at += short
            self._tokens -= 1
            self._recent.append(self._at)
