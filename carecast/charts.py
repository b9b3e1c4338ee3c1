"""The weekly report's charts as PNG images (matplotlib, Agg backend: no display): people's clicks per channel per
week, and the weekday and hour they come at. Sized for a phone: 375 CSS px wide at 2x, large type, one idea each."""

from __future__ import annotations

import calendar
import io
from collections import Counter
from datetime import datetime, timedelta, tzinfo

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to memory, never to a window

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from carecast.ledger import Click

#: 3.75 x 3 inches at 200 dpi: 750 px wide, a 375 px phone screen at 2x.
SIZE = (3.75, 3.0)
DPI = 200


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def _week(moment: datetime) -> datetime:
    start = moment - timedelta(days=moment.weekday())
    return start.replace(hour=0, minute=0, second=0, microsecond=0)


def clicks_per_week(clicks: list[Click], zone: tzinfo) -> bytes:
    """A line per channel: people's clicks in each week (Monday to Sunday, practice time)."""
    people = [click for click in clicks if click.kind == "person"]
    weeks = sorted({_week(click.at.astimezone(zone)) for click in people})
    figure, axes = plt.subplots(figsize=SIZE)
    per_channel: dict[str, Counter[datetime]] = {}
    for click in people:
        per_channel.setdefault(click.channel, Counter())[_week(click.at.astimezone(zone))] += 1
    for index, (channel, counts) in enumerate(sorted(per_channel.items())):
        # Ten colours come round again: from the eleventh channel on, its line is dashed and its marks square.
        lap = index // 10 % 4
        axes.plot(
            [f"{w:%b %d}" for w in weeks],
            [counts[w] for w in weeks],
            label=channel,
            marker="os^D"[lap],
            linestyle=("-", "--", ":", "-.")[lap],
        )
    axes.set_title("People's clicks per week", fontsize=11)
    axes.tick_params(labelsize=8)
    if per_channel:
        # Below the plot, not over its lines.
        axes.legend(fontsize=7, frameon=False, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    else:
        axes.text(0.5, 0.5, "no clicks yet", ha="center", va="center", transform=axes.transAxes)
    return _png(figure)


def best_weekday_hour(clicks: list[Click], zone: tzinfo) -> bytes:
    """People's clicks by weekday (left) and by hour of day (right), practice time."""
    people = [click.at.astimezone(zone) for click in clicks if click.kind == "person"]
    days = Counter(moment.weekday() for moment in people)
    hours = Counter(moment.hour for moment in people)
    figure, (left, right) = plt.subplots(2, 1, figsize=(SIZE[0], SIZE[1] * 1.4))
    left.bar(list(calendar.day_abbr), [days[day] for day in range(7)], color="#2a7ab0")
    left.set_title("Clicks by weekday", fontsize=11)
    right.bar(range(24), [hours[hour] for hour in range(24)], color="#e07b39")
    right.set_title("Clicks by hour", fontsize=11)
    right.set_xticks(range(0, 24, 3))
    for axes in (left, right):
        axes.tick_params(labelsize=8)
    return _png(figure)


def charts(clicks: list[Click], zone: tzinfo) -> dict[str, bytes]:
    """Every chart of the report (of these clicks), by file name."""
    return {
        "clicks-per-week.png": clicks_per_week(clicks, zone),
        "best-weekday-hour.png": best_weekday_hour(clicks, zone),
    }
