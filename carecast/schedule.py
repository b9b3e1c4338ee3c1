"""Publishing slots in the practice's time zone: when a draft is due, when it has expired, and the coming calendar.

Staff write slots in the practice's wall-clock time; everything else works in UTC. Three config forms::

    schedule:
      - days: [tue]                  # or weekdays, weekends, daily; names such as mon or Monday
        at: "10:00"
      - days: weekdays
        at: ["09:00", "12:30"]
      - monthly: first-monday        # first..fourth or last, then a weekday; or a day of the month 1-28
        at: "11:00"
      - cron: "0 10 * * TUE"         # 5-field cron in the practice's zone, for anything else
    ingest:
      every_minutes: 30
    late: skip                       # or {send_within: "2h"}

Each :class:`Slot` turns into cron strings (:meth:`Slot.to_cron`) so the Prefect side builds
``CronSchedule(cron=..., timezone=practice_tz)`` from the very same rule; :class:`Every` is elapsed time, an
``IntervalSchedule(interval=every.interval, anchor_date=Every.ANCHOR)``.

Daylight saving time follows Prefect's ``CronSchedule`` exactly, so what the core calls due is what Prefect
triggers: cron runs over wall-clock times, and each wall time becomes one instant on its own, whatever the window
asked about. A wall time that happens twice (01:30 on fall-back day) is the first one, daylight time; a wall
time that does not exist (02:30 on spring-forward day) is moved forward by the size of the gap, to 03:30 daylight
time, so the post still goes out that morning rather than being lost; that is PEP 495's ``fold=0``. Two wall times
landing on the same instant fire once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter
from pydantic import BeforeValidator, Field, field_validator, model_validator

from carecast.model import utc
from carecast.strict import Strict

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEK: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_GROUPS: dict[str, tuple[Weekday, ...]] = {"daily": WEEK, "weekdays": WEEK[:5], "weekends": WEEK[5:]}
_ORDINALS = {"first": "#1", "second": "#2", "third": "#3", "fourth": "#4"}
_MONTHLY = re.compile(r"^(first|second|third|fourth|last)-([a-z]+)$")
_HH_MM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DURATION = re.compile(r"^(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?$")

#: Wider than any UTC offset change, so a search window in wall time never misses an instant at its edges.
_MARGIN = timedelta(days=1)


def _weekday(name: str) -> Weekday:
    key = name.strip().lower()
    for day, full in zip(WEEK, _FULL_NAMES, strict=True):
        if key in (day, full):
            return day
    raise ValueError(f"a weekday such as mon, tue or Monday, not {name!r}")


def _parse_days(value: Any) -> Any:
    if isinstance(value, str):
        if value.strip().lower() in _DAY_GROUPS:
            return _DAY_GROUPS[value.strip().lower()]
        value = [value]
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("at least one weekday, or weekdays, weekends or daily")
        named = {_weekday(str(day)) for day in value}
        return tuple(day for day in WEEK if day in named)
    raise ValueError("a list of weekdays such as [mon, thu], or weekdays, weekends or daily")


def _parse_time(value: Any) -> time:
    # PyYAML reads an unquoted 10:00 as the base-60 integer 600 (YAML 1.1); 09:00 stays a string. Staff meant 10:00.
    if isinstance(value, int) and not isinstance(value, bool) and 60 <= value < 24 * 60:
        return time(value // 60, value % 60)
    if isinstance(value, time):
        if value.tzinfo is not None or value.second or value.microsecond:
            raise ValueError(f"a whole minute, without a zone (the practice's applies), not {value.isoformat()}")
        return time(value.hour, value.minute)
    match = _HH_MM.match(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'a 24-hour time "HH:MM" in quotes, such as "09:00" or "17:30", not {value!r}')
    return time(int(match[1]), int(match[2]))


def _parse_times(value: Any) -> tuple[time, ...]:
    values = value if isinstance(value, list | tuple) else [value]
    if not values:
        raise ValueError('at least one time, such as "09:00"')
    return tuple(sorted({_parse_time(one) for one in values}))


def _parse_monthly(value: Any) -> str | int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 28:
        return value
    match = _MONTHLY.match(value.strip().lower()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            "first-monday, second-tuesday, third-..., fourth-... or last-friday, or a day of the month 1-28 "
            f"(every month has it), not {value!r}"
        )
    return f"{match[1]}-{_FULL_NAMES[WEEK.index(_weekday(match[2]))]}"


def _check_cron(expression: str) -> str:
    expression = " ".join(expression.split())
    example = "5 fields 'minute hour day-of-month month day-of-week' in the practice's zone, such as '0 10 * * TUE'"
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(f"{example}, not {expression!r}")
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError as exc:
        raise ValueError(f"{expression!r} never fires (no such date); {example}") from exc
    return expression


class Slot(Strict):
    """One publishing rule in the practice's wall-clock time: exactly one of ``days``, ``monthly`` or ``cron``."""

    days: Annotated[tuple[Weekday, ...] | None, BeforeValidator(_parse_days)] = None
    monthly: Annotated[str | int | None, BeforeValidator(_parse_monthly)] = None
    cron: str | None = None
    at: Annotated[tuple[time, ...], BeforeValidator(_parse_times)] = ()

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return None if value is None else _check_cron(value)

    @model_validator(mode="after")
    def _one_form(self) -> Slot:
        forms = [name for name in ("days", "monthly", "cron") if getattr(self, name) is not None]
        if len(forms) != 1:
            found = " and ".join(forms) if forms else "none"
            raise ValueError(
                f'exactly one of days, monthly or cron (found {found}), e.g. {{days: [tue], at: "10:00"}}, '
                f'{{monthly: first-monday, at: "11:00"}} or {{cron: "0 10 * * TUE"}}'
            )
        if self.cron is not None and self.at:
            raise ValueError("at goes with days or monthly; a cron expression carries its own time")
        if self.cron is None and not self.at:
            raise ValueError(f'at: the time of day for {forms[0]}, such as "09:00" or ["09:00", "12:30"]')
        return self

    def to_cron(self) -> list[str]:
        """The rule as 5-field cron strings in the practice's zone, one per distinct minute of ``at``."""
        if self.cron is not None:
            return [self.cron]
        day_of_month, day_of_week = "*", "*"
        if self.days is not None and self.days != WEEK:
            day_of_week = ",".join(day.upper() for day in self.days)
        elif isinstance(self.monthly, int):
            day_of_month = str(self.monthly)
        elif isinstance(self.monthly, str):
            ordinal, name = self.monthly.split("-")
            day = _weekday(name)
            # croniter's (and Prefect's vendored copy's) forms: MON#1 is the first Monday, L5 the last Friday.
            day_of_week = f"L{WEEK.index(day) + 1}" if ordinal == "last" else day.upper() + _ORDINALS[ordinal]
        hours_by_minute: dict[int, list[int]] = {}
        for moment in self.at:
            hours_by_minute.setdefault(moment.minute, []).append(moment.hour)
        return [
            f"{minute} {','.join(map(str, hours))} {day_of_month} * {day_of_week}"
            for minute, hours in sorted(hours_by_minute.items())
        ]


class Every(Strict):
    """An interval job (ingest): every ``every_minutes`` of elapsed time, counted from :attr:`ANCHOR`.

    Elapsed, not wall-clock, time: a 30-minute poll keeps polling every 30 minutes through the repeated hour,
    as Prefect's ``IntervalSchedule`` does for intervals under a day.
    """

    ANCHOR: ClassVar[datetime] = datetime(2020, 1, 1, tzinfo=UTC)

    every_minutes: int = Field(ge=1, le=24 * 60, description="minutes between runs, 1 to 1440")

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.every_minutes)

    def times(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Run times ``t`` with ``after < t <= until`` (UTC-aware in and out)."""
        first, last = (after - self.ANCHOR) // self.interval + 1, (until - self.ANCHOR) // self.interval
        return (self.ANCHOR + index * self.interval for index in range(first, last + 1))


Schedule = Slot | Every


def _parse_window(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(value.strip().lower()) if isinstance(value, str) and value.strip() else None
    if match is None:
        raise ValueError(f'a duration such as "30m", "2h" or "1h30m", not {value!r}')
    days, hours, minutes = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


class LatePolicy(Strict):
    """How late a draft may still go out after its slot. ``late: skip`` (the default) or ``{send_within: "2h"}``.

    ``skip`` still allows :attr:`SKIP_GRACE`: the run a slot triggers starts when a worker picks it up, and may
    be retried, a few minutes after the slot itself. Nothing is ever sent more than a day late.
    """

    SKIP_GRACE: ClassVar[timedelta] = timedelta(minutes=15)

    send_within: Annotated[timedelta, BeforeValidator(_parse_window)] = SKIP_GRACE

    @model_validator(mode="before")
    @classmethod
    def _skip(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().lower() != "skip":
                raise ValueError(f'skip, or {{send_within: "2h"}}, not {value!r}')
            return {}
        return value

    @field_validator("send_within")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(days=1):
            raise ValueError(f"between 1m and 24h: a draft is never sent days late (got {value})")
        return value


def _localize(wall: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: the first of a repeated wall time, and a skipped one shifted forward by the gap, as Prefect does.
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _slot_times(schedule: Schedule, zone: ZoneInfo, after: datetime, until: datetime) -> Iterator[datetime]:
    if isinstance(schedule, Every):
        yield from schedule.times(after, until)
        return
    stop = _wall(until, zone) + _MARGIN
    for expression in schedule.to_cron():
        for wall in croniter(expression, _wall(after, zone) - _MARGIN).all_next(datetime):
            if wall > stop:
                break
            moment = _localize(wall, zone)
            if after < moment <= until:
                yield moment


def next_slots(slots: Iterable[Schedule], zone: ZoneInfo, after: datetime, until: datetime) -> list[datetime]:
    """Every slot time ``t`` with ``after < t <= until``, in UTC, sorted, each instant once.

    Raises ValueError when ``after`` or ``until`` is naive.
    """
    after, until = utc(after), utc(until)
    return sorted({moment for slot in slots for moment in _slot_times(slot, zone, after, until)})


def is_expired(slot_time: datetime, now: datetime, policy: LatePolicy) -> bool:
    """Whether a draft for ``slot_time`` may no longer be sent at ``now``: the slot passed more than the window ago.

    Raises ValueError when either datetime is naive.
    """
    return utc(now) - utc(slot_time) > policy.send_within


def calendar(
    schedules: Mapping[str, Sequence[Schedule]], zone: ZoneInfo, start: datetime, days: int = 14
) -> list[tuple[datetime, str]]:
    """The staff's calendar: ``(local time, name)`` for every slot of every named schedule in the next ``days``.

    Raises ValueError when ``start`` is naive.
    """
    until = utc(start) + timedelta(days=days)
    entries = [
        (moment.astimezone(zone), name)
        for name, slots in schedules.items()
        for moment in next_slots(slots, zone, start, until)
    ]
    return sorted(entries)
