"""Paced sending: rates as configured, and calls spaced evenly without a burst."""

from __future__ import annotations

import itertools

import pytest

from carecast.pacing import Pacer, per_second


@pytest.mark.parametrize(("rate", "expected"), [("50/s", 50.0), ("1/s", 1.0), ("30/min", 0.5), (" 2.5 / sec ", 2.5)])
def test_rates(rate: str, expected: float) -> None:
    assert per_second(rate) == expected


@pytest.mark.parametrize("rate", ["50", "0/s", "50/h", "fast", "-1/s"])
def test_bad_rates_are_refused(rate: str) -> None:
    with pytest.raises(ValueError, match="50/s"):
        per_second(rate)


class Clock:
    """A clock the pacer reads and sleeps on, so the test measures its schedule, not the machine."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_calls_are_spaced_evenly_and_a_pause_builds_at_most_a_burst() -> None:
    clock = Clock()
    pacer = Pacer(50, clock=clock, sleep=clock.sleep)
    assert pacer.burst == 5  # a tenth of a second's worth
    moments = []
    for _ in range(5):
        pacer.wait()
        moments.append(clock.now)
    assert [round(b - a, 6) for a, b in itertools.pairwise(moments)] == [0.02] * 4
    clock.now += 10  # a long pause: five calls may go at once, then the rate again
    start = clock.now
    for _ in range(5):
        pacer.wait()
    assert clock.now == start
    pacer.wait()
    assert round(clock.now - start, 6) == 0.02


def test_no_interval_sees_more_than_the_rate_and_a_burst() -> None:
    clock = Clock()
    pacer = Pacer(50, clock=clock, sleep=clock.sleep)
    moments = []
    for number in range(500):
        pacer.wait()
        moments.append(clock.now)
        clock.now += 0.05 if number % 7 == 0 else 0.001  # answers of uneven length
    for first, at in enumerate(moments):
        within_a_second = sum(1 for later in moments[first:] if later < at + 1)
        assert within_a_second <= 50 + pacer.burst
