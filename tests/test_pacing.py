"""Paced sending: rates as configured, calls spaced evenly after a short burst, and never more than the limit in any
window."""

from __future__ import annotations

import itertools

import pytest

from carecast.pacing import Pacer, parse_rate


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        ("50/s", (50, 1.0)),
        ("1/s", (1, 1.0)),
        ("30/min", (30, 60.0)),
        (" 2 / sec ", (2, 1.0)),
        ("100/15min", (100, 900.0)),
        ("1000/h", (1000, 3600.0)),
    ],
)
def test_rates(rate: str, expected: tuple[int, float]) -> None:
    assert parse_rate(rate) == expected


@pytest.mark.parametrize("rate", ["50", "0/s", "50/d", "fast", "-1/s", "2.5/s", "5/0min"])
def test_bad_rates_are_refused(rate: str) -> None:
    with pytest.raises(ValueError, match="50/s"):
        parse_rate(rate)


class Clock:
    """A clock the pacer reads and sleeps on, so the test measures its schedule, not the machine."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_calls_are_spaced_evenly_after_a_burst_and_a_pause_builds_at_most_a_burst() -> None:
    clock = Clock()
    pacer = Pacer(50, clock=clock, sleep=clock.sleep)
    assert pacer.burst == 5  # a tenth of a second's worth
    moments = []
    for _ in range(10):
        pacer.wait()
        moments.append(clock.now)
    assert moments[:5] == [100.0] * 5
    assert [round(b - a, 6) for a, b in itertools.pairwise(moments[4:])] == [0.02] * 5
    clock.now += 10  # a long pause: five calls may go at once, then the rate again
    start = clock.now
    for _ in range(5):
        pacer.wait()
    assert clock.now == start
    pacer.wait()
    assert round(clock.now - start, 6) == 0.02


@pytest.mark.parametrize(("requests", "seconds"), [(50, 1.0), (10, 60.0), (3, 900.0)])
def test_no_window_sees_more_than_the_limit(requests: int, seconds: float) -> None:
    clock = Clock()
    pacer = Pacer(requests, seconds, clock=clock, sleep=clock.sleep)
    moments = []
    for number in range(20 * requests):
        pacer.wait()
        moments.append(clock.now)
        clock.now += seconds / 20 if number % 7 == 0 else seconds / 1000  # answers of uneven length
    for first, at in enumerate(moments):
        assert sum(1 for later in moments[first:] if later < at + seconds) <= requests
    # ... and it keeps up with the limit: the whole run took little more than its windows.
    assert clock.now - moments[0] <= 21 * seconds


def test_a_short_thread_goes_at_once_under_a_slow_limit() -> None:
    clock = Clock()
    pacer = Pacer(100, 900.0, clock=clock, sleep=clock.sleep)  # X: 100 posts per 15 minutes
    for _ in range(4):
        pacer.wait()
    assert clock.now == 100.0
