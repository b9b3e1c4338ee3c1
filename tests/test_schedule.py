"""Publishing slots across time zones and DST, interval jobs, the 14-day calendar, the late policy and slot config."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from carecast.schedule import (
    WEEK,
    Every,
    LatePolicy,
    Schedule,
    Slot,
    calendar,
    is_expired,
    next_slots,
)

CHICAGO = ZoneInfo("America/Chicago")
NEW_YORK = ZoneInfo("America/New_York")
ZONES = [CHICAGO, NEW_YORK]
SPRING_FORWARD = [date(2026, 3, 8), date(2027, 3, 14)]
FALL_BACK = [date(2026, 11, 1), date(2027, 11, 7)]


def slot(**fields: object) -> Slot:
    return Slot.model_validate(fields)


def local_day(zone: ZoneInfo, day: date) -> tuple[datetime, datetime]:
    """The UTC bounds of one local calendar day, as ``(after, until]`` for next_slots."""
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start - timedelta(microseconds=1), end - timedelta(microseconds=1)


def local(moments: list[datetime], zone: ZoneInfo) -> list[str]:
    return [moment.astimezone(zone).isoformat() for moment in moments]


@pytest.mark.parametrize("zone", ZONES, ids=str)
@pytest.mark.parametrize("day", SPRING_FORWARD + FALL_BACK, ids=str)
def test_nine_oclock_fires_once_at_nine_on_dst_change_days(zone: ZoneInfo, day: date) -> None:
    times = next_slots([slot(days="daily", at="09:00")], zone, *local_day(zone, day))
    assert [moment.astimezone(zone).replace(tzinfo=None) for moment in times] == [datetime.combine(day, time(9))]


@pytest.mark.parametrize(("zone", "utc_hour"), [(CHICAGO, 8), (NEW_YORK, 7)], ids=str)
@pytest.mark.parametrize("day", SPRING_FORWARD, ids=str)
def test_slot_in_the_skipped_hour_fires_once_an_hour_later(zone: ZoneInfo, utc_hour: int, day: date) -> None:
    times = next_slots([slot(days="daily", at="02:30")], zone, *local_day(zone, day))
    assert times == [datetime.combine(day, time(utc_hour, 30), tzinfo=UTC)]
    assert times[0].astimezone(zone).time() == time(3, 30)


@pytest.mark.parametrize(("zone", "utc_hour"), [(CHICAGO, 6), (NEW_YORK, 5)], ids=str)
@pytest.mark.parametrize("day", FALL_BACK, ids=str)
def test_slot_in_the_repeated_hour_fires_once_the_first_time(zone: ZoneInfo, utc_hour: int, day: date) -> None:
    times = next_slots([slot(days="daily", at="01:30")], zone, *local_day(zone, day))
    assert times == [datetime.combine(day, time(utc_hour, 30), tzinfo=UTC)]  # daylight time, the first 01:30


def test_skipped_and_existing_wall_times_that_meet_fire_once() -> None:
    # 02:30 does not exist on 2026-03-08 and moves to 03:30, where the other slot already is.
    times = next_slots([slot(days="daily", at=["02:30", "03:30"])], CHICAGO, *local_day(CHICAGO, date(2026, 3, 8)))
    assert local(times, CHICAGO) == ["2026-03-08T03:30:00-05:00"]


def test_weekday_slots_twice_a_day() -> None:
    social = [slot(days="weekdays", at=["09:00", "12:30"])]
    start = datetime(2026, 4, 4, tzinfo=CHICAGO)  # a Saturday
    times = next_slots(social, CHICAGO, start, start + timedelta(days=7))
    assert len(times) == 10
    assert {moment.astimezone(CHICAGO).strftime("%a %H:%M") for moment in times} == {
        f"{day} {at}" for day in ("Mon", "Tue", "Wed", "Thu", "Fri") for at in ("09:00", "12:30")
    }


def test_window_is_after_exclusive_until_inclusive() -> None:
    newsletter = [slot(days=["tue"], at="10:00")]
    first, second = datetime(2026, 3, 3, 16, tzinfo=UTC), datetime(2026, 3, 10, 15, tzinfo=UTC)
    assert next_slots(newsletter, CHICAGO, first, second) == [second]
    assert next_slots(newsletter, CHICAGO, first - timedelta(seconds=1), second - timedelta(seconds=1)) == [first]


def test_first_monday_and_last_friday_of_every_month() -> None:
    sms = [slot(monthly="first-monday", at="11:00")]
    start = datetime(2026, 1, 1, tzinfo=CHICAGO)
    times = [moment.astimezone(CHICAGO) for moment in next_slots(sms, CHICAGO, start, start + timedelta(days=365))]
    assert [moment.month for moment in times] == list(range(1, 13))
    assert all(moment.weekday() == 0 and moment.day <= 7 and moment.time() == time(11) for moment in times)
    assert times[2].date() == date(2026, 3, 2)

    last = next_slots([slot(monthly="last-Friday", at="16:00")], NEW_YORK, start, start + timedelta(days=60))
    assert [moment.astimezone(NEW_YORK).date() for moment in last] == [date(2026, 1, 30), date(2026, 2, 27)]


def test_day_of_month() -> None:
    times = next_slots(
        [slot(monthly=15, at="08:00")], NEW_YORK, datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC)
    )
    assert local(times, NEW_YORK) == [
        "2027-01-15T08:00:00-05:00",
        "2027-02-15T08:00:00-05:00",
        "2027-03-15T08:00:00-04:00",
    ]


def test_interval_job_counts_elapsed_time_through_the_repeated_hour() -> None:
    ingest = [Every(every_minutes=30)]
    after, until = local_day(CHICAGO, date(2026, 11, 1))  # 25 hours long
    times = next_slots(ingest, CHICAGO, after, until)
    assert len(times) == 50
    assert {b - a for a, b in itertools.pairwise(times)} == {timedelta(minutes=30)}
    assert Every(every_minutes=45).interval == timedelta(minutes=45)


def test_fourteen_day_calendar_across_fall_back() -> None:
    schedules: dict[str, list[Schedule]] = {
        "newsletter": [slot(days=["tue"], at="10:00")],
        "social": [slot(days="weekdays", at=["09:00", "12:30"])],
        "sms": [slot(monthly="first-monday", at="11:00")],
    }
    start = datetime(2026, 10, 26, 6, tzinfo=UTC)  # Monday 01:00 CDT
    entries = calendar(schedules, CHICAGO, start)
    assert [when.isoformat() for when, name in entries if name != "social"] == [
        "2026-10-27T10:00:00-05:00",
        "2026-11-02T11:00:00-06:00",
        "2026-11-03T10:00:00-06:00",
    ]
    social = [when for when, name in entries if name == "social"]
    assert len(social) == 20 and {when.strftime("%H:%M") for when in social} == {"09:00", "12:30"}
    assert entries == sorted(entries)


def test_to_cron() -> None:
    assert slot(days=["Tuesday"], at="10:00").to_cron() == ["0 10 * * TUE"]
    assert slot(days="weekdays", at=["12:30", "09:00", "17:00"]).to_cron() == [
        "0 9,17 * * MON,TUE,WED,THU,FRI",
        "30 12 * * MON,TUE,WED,THU,FRI",
    ]
    assert slot(days="daily", at="07:05").to_cron() == ["5 7 * * *"]
    assert slot(monthly="first-monday", at="11:00").to_cron() == ["0 11 * * MON#1"]
    assert slot(monthly="last-friday", at="11:00").to_cron() == ["0 11 * * L5"]
    assert slot(monthly=1, at="08:15").to_cron() == ["15 8 1 * *"]
    assert slot(cron="0  10 * *   TUE").to_cron() == ["0 10 * * TUE"]


def test_yaml_config_forms_including_unquoted_times() -> None:
    # PyYAML reads the unquoted 10:00 as the number 600 and 12:30 as 750; staff meant the clock times.
    raw = yaml.safe_load(
        textwrap.dedent(
            """
            - {days: [tue], at: 10:00}
            - {days: weekdays, at: ["09:00", 12:30]}
            - {monthly: first-monday, at: "11:00"}
            - {cron: "0 10 * * TUE"}
            - {every_minutes: 30}
            """
        )
    )
    parsed = TypeAdapter(list[Schedule]).validate_python(raw)
    assert parsed[0] == slot(days=["tue"], at="10:00")
    assert parsed[1].at == (time(9), time(12, 30))  # type: ignore[union-attr]
    assert parsed[4] == Every(every_minutes=30)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"days": ["tues"], "at": "10:00"}, "a weekday such as mon, tue or Monday, not 'tues'"),
        ({"days": [], "at": "10:00"}, "at least one weekday"),
        ({"days": "tue"}, 'at: the time of day for days, such as "09:00"'),
        ({"days": "tue", "at": "9am"}, 'a 24-hour time "HH:MM" in quotes, such as "09:00" or "17:30", not \'9am\''),
        ({"days": "tue", "at": 9}, 'a 24-hour time "HH:MM"'),
        ({"days": "tue", "at": "24:00"}, 'a 24-hour time "HH:MM"'),
        ({"days": "tue", "at": time(9, 0, 30)}, "a whole minute, without a zone"),
        ({"monthly": "fifth-monday", "at": "11:00"}, "first-monday, second-tuesday"),
        ({"monthly": 31, "at": "11:00"}, "a day of the month 1-28 (every month has it)"),
        ({"cron": "0 10 * * TUE", "at": "10:00"}, "a cron expression carries its own time"),
        ({"cron": "0 0 10 * * TUE"}, "5 fields 'minute hour day-of-month month day-of-week'"),
        ({"cron": "61 * * * *"}, "5 fields"),
        ({"cron": "0 0 30 2 *"}, "'0 0 30 2 *' never fires"),
        ({"at": "10:00"}, "exactly one of days, monthly or cron (found none)"),
        ({"days": "mon", "cron": "0 10 * * TUE"}, "exactly one of days, monthly or cron (found days and cron)"),
        ({"days": "mon", "at": "10:00", "time": "10:00"}, "Extra inputs are not permitted"),
    ],
)
def test_slot_validation_errors_explain_the_expectation(fields: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Slot.model_validate(fields)
    assert expected in str(caught.value)


def test_every_validation() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        Every(every_minutes=0)
    with pytest.raises(ValidationError, match="less than or equal to 1440"):
        Every(every_minutes=2000)


def test_late_policy_forms() -> None:
    assert LatePolicy.model_validate("skip") == LatePolicy() == LatePolicy(send_within=LatePolicy.SKIP_GRACE)
    assert LatePolicy.model_validate({"send_within": "2h"}).send_within == timedelta(hours=2)
    assert LatePolicy.model_validate({"send_within": "1h30m"}).send_within == timedelta(minutes=90)
    assert LatePolicy.model_validate({"send_within": "45 min"}).send_within == timedelta(minutes=45)
    for raw, expected in [
        ("later", "skip, or {send_within: \"2h\"}, not 'later'"),
        ({"send_within": "3d"}, "between 1m and 24h: a draft is never sent days late"),
        ({"send_within": "soon"}, 'a duration such as "30m", "2h" or "1h30m"'),
        ({"send_within": 2}, 'a duration such as "30m"'),
        ({"send_within": "2h", "retry": True}, "Extra inputs are not permitted"),
    ]:
        with pytest.raises(ValidationError) as caught:
            LatePolicy.model_validate(raw)
        assert expected in str(caught.value)


def test_is_expired() -> None:
    slot_time = datetime(2026, 3, 10, 15, tzinfo=UTC)
    skip, two_hours = LatePolicy(), LatePolicy.model_validate({"send_within": "2h"})
    assert not is_expired(slot_time, slot_time - timedelta(days=1), skip)  # not yet due
    assert not is_expired(slot_time, slot_time + timedelta(minutes=10), skip)  # the slot's own run, picked up late
    assert is_expired(slot_time, slot_time + timedelta(minutes=16), skip)
    assert not is_expired(slot_time, slot_time + timedelta(hours=2), two_hours)
    assert is_expired(slot_time, slot_time + timedelta(hours=2, seconds=1), two_hours)
    assert is_expired(slot_time, slot_time + timedelta(days=3), two_hours)
    with pytest.raises(ValueError, match="naive datetime"):
        is_expired(slot_time, datetime(2026, 3, 10, 16), skip)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        next_slots([slot(days="daily", at="09:00")], CHICAGO, datetime(2026, 1, 1), datetime(2026, 1, 2, tzinfo=UTC))


# Lord Howe moves its clocks by 30 minutes: a gap and a fold that are not whole hours.
PROPERTY_ZONES = [CHICAGO, NEW_YORK, ZoneInfo("Europe/London"), ZoneInfo("Australia/Lord_Howe")]
# Wall times in or next to the gaps and folds of these zones, drawn often so each run meets them.
EDGE_TIMES = [time(0, 30), time(1, 0), time(1, 30), time(1, 45), time(2, 0), time(2, 15), time(2, 30), time(3, 0)]
MINUTES = st.times().map(lambda moment: moment.replace(second=0, microsecond=0, fold=0))
DST_DAYS = [*SPRING_FORWARD, *FALL_BACK, date(2026, 3, 29), date(2026, 10, 25), date(2026, 4, 5), date(2026, 10, 4)]


@settings(max_examples=80, deadline=None, database=None)  # no .hypothesis folder outside tmp_path
@given(
    zone=st.sampled_from(PROPERTY_ZONES),
    days=st.sets(st.sampled_from(WEEK), min_size=1),
    at=st.sets(st.one_of(st.sampled_from(EDGE_TIMES), MINUTES), min_size=1, max_size=4),
    around=st.sampled_from(DST_DAYS),
    offset_hours=st.integers(min_value=-72, max_value=0),
    span_hours=st.integers(min_value=1, max_value=24 * 5),
)
def test_every_slot_shows_its_wall_clock_time(
    zone: ZoneInfo, days: set[str], at: set[time], around: date, offset_hours: int, span_hours: int
) -> None:
    rule = slot(days=sorted(days), at=sorted(at))
    after = datetime.combine(around, time(0), tzinfo=UTC) + timedelta(hours=offset_hours)
    until = after + timedelta(hours=span_hours)
    times = next_slots([rule], zone, after, until)
    assert times == sorted(set(times))
    assert all(after < moment <= until and moment.tzinfo is UTC for moment in times)
    for moment in times:
        shown = moment.astimezone(zone)
        assert shown.strftime("%a").lower() in days
        if shown.time() not in at:  # the documented case: a wall time that does not exist, moved past the gap
            skipped = [datetime.combine(shown.date(), wall, tzinfo=zone) for wall in at]
            assert any(
                wall.astimezone(UTC) == moment and wall.astimezone(UTC).astimezone(zone).time() != wall.time()
                for wall in skipped
            )
    # And nothing is missed: on each whole local day inside the window, every existing configured time shows.
    day = after.astimezone(zone).date() + timedelta(days=1)
    while datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone) < until:
        if day.strftime("%a").lower() in days:
            shown_times = {moment.astimezone(zone).time() for moment in times if moment.astimezone(zone).date() == day}
            existing = {
                wall
                for wall in at
                if datetime.combine(day, wall, tzinfo=zone).astimezone(UTC).astimezone(zone).time() == wall
            }
            assert existing <= shown_times
        day += timedelta(days=1)


PREFECT_SCRIPT = """
import asyncio, json, sys
from datetime import datetime
from prefect.server.schemas.schedules import CronSchedule

cases = json.loads(sys.argv[1])
out = []
for cron, zone, start, end in cases:
    schedule = CronSchedule(cron=cron, timezone=zone)
    dates = asyncio.run(schedule.get_dates(start=datetime.fromisoformat(start), end=datetime.fromisoformat(end)))
    out.append(sorted(date.timestamp() for date in dates))
print(json.dumps(out))
"""


def test_same_instants_as_prefects_cron_schedule(tmp_path: Path) -> None:
    """Prefect triggers the runs; the core must agree with it on every DST edge, so compare with the real thing."""
    rules = [
        slot(days="daily", at=["01:30", "02:30", "03:00", "09:00"]),
        slot(days="weekdays", at=["00:00", "12:30"]),
        slot(monthly="second-sunday", at="02:15"),
        slot(cron="*/20 1-3 * * *"),
    ]
    windows = [(zone, day) for zone in (CHICAGO, NEW_YORK) for day in SPRING_FORWARD + FALL_BACK]
    cases, expected = [], []
    for zone, day in windows:
        # Start half a minute off any slot: Prefect's start is inclusive, ours exclusive.
        start = datetime.combine(day, time(0, 0, 30), tzinfo=UTC) - timedelta(days=1)
        end = start + timedelta(days=3)
        for rule in rules:
            for cron in rule.to_cron():
                cases.append((cron, str(zone), start.isoformat(), end.isoformat()))
                expected.append([moment.timestamp() for moment in next_slots([slot(cron=cron)], zone, start, end)])
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    result = subprocess.run(
        [sys.executable, "-c", PREFECT_SCRIPT, json.dumps(cases)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(result.stdout) == expected
