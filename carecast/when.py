"""Moments as staff type them on the command line (``--since``): dates, durations ago and a few words."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_AGO = re.compile(r"^(\d+)\s*(w|weeks?|d|days?|h|hours?|m|min|minutes?)(\s+ago)?$")
_UNIT = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def parse_since(text: str, now: datetime) -> datetime:
    """A moment as staff write it, in UTC: an ISO 8601 date or time (UTC unless it names a zone); a duration ago
    (``2d``, ``36h``, ``90m``, ``1w``, ``3 days ago``); or ``now``, ``today``, ``yesterday`` (from midnight UTC),
    ``this week`` (from Monday), ``last week`` (the last 7 days). Raises ValueError naming what it accepts."""
    words = " ".join(text.strip().lower().split())
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    named = {
        "now": now,
        "today": midnight,
        "yesterday": midnight - timedelta(days=1),
        "this week": midnight - timedelta(days=midnight.weekday()),
        "last week": now - timedelta(weeks=1),
    }
    if words in named:
        return named[words].astimezone(UTC)
    ago = _AGO.match(words)
    if ago:
        return (now - int(ago.group(1)) * _UNIT[ago.group(2)[0]]).astimezone(UTC)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"an ISO date or time (2026-11-01, 2026-11-01T09:00-06:00), a duration ago (2d, 36h, 90m, 1w) or "
            f"today, yesterday, this week, last week; not {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
