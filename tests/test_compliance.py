"""Quiet hours at the recipient's location (DST edges, Florida, per-state windows) and STOP/START/HELP replies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from carecast.compliance import QuietHours, Window, handle_inbound, intent, recipient_zones, state_of
from carecast.config import Practice
from carecast.ledger import Ledger
from carecast.pipeline import sync_audience
from carecast.practice import load_settings
from tests.conftest import write_config

CHICAGO, NEW_YORK = ZoneInfo("America/Chicago"), ZoneInfo("America/New_York")
CHICAGO_NUMBER, FLORIDA_NUMBER = "+13125550117", "+13055550164"


def at(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def practice(tmp_path: Path) -> Practice:
    return load_settings(write_config(tmp_path)).practice


@pytest.mark.parametrize(
    ("zone", "now", "opening"),
    [
        # Chicago, DST starts Sunday 2026-03-08: 08:00 is 14:00 UTC the day before and 13:00 UTC that day.
        (CHICAGO, at(2026, 3, 7, 14, 0), at(2026, 3, 7, 14, 0)),
        (CHICAGO, at(2026, 3, 7, 13, 59), at(2026, 3, 7, 14, 0)),
        (CHICAGO, at(2026, 3, 8, 13, 0), at(2026, 3, 8, 13, 0)),
        (CHICAGO, at(2026, 3, 8, 12, 59), at(2026, 3, 8, 13, 0)),
        # 20:00 CST Saturday is closed; the next opening is across the change, at 08:00 CDT.
        (CHICAGO, at(2026, 3, 8, 2, 0), at(2026, 3, 8, 13, 0)),
        (CHICAGO, at(2026, 3, 8, 1, 59), at(2026, 3, 8, 1, 59)),
        # Chicago, DST ends Sunday 2026-11-01: 08:00 CST is 14:00 UTC; 19:59 CST is 01:59 UTC the next day.
        (CHICAGO, at(2026, 11, 1, 13, 30), at(2026, 11, 1, 14, 0)),
        (CHICAGO, at(2026, 11, 2, 1, 59), at(2026, 11, 2, 1, 59)),
        (CHICAGO, at(2026, 11, 2, 2, 0), at(2026, 11, 2, 14, 0)),
        # 20:00 CDT Saturday 2026-10-31 is closed until 08:00 CST Sunday.
        (CHICAGO, at(2026, 11, 1, 1, 0), at(2026, 11, 1, 14, 0)),
        # New York, same Sundays: 08:00 EDT is 12:00 UTC, 08:00 EST is 13:00 UTC.
        (NEW_YORK, at(2026, 3, 8, 11, 59), at(2026, 3, 8, 12, 0)),
        (NEW_YORK, at(2026, 3, 8, 12, 0), at(2026, 3, 8, 12, 0)),
        (NEW_YORK, at(2026, 3, 8, 0, 30), at(2026, 3, 8, 0, 30)),  # 19:30 EST Saturday: still open
        (NEW_YORK, at(2026, 11, 1, 12, 30), at(2026, 11, 1, 13, 0)),
        (NEW_YORK, at(2026, 11, 1, 0, 0), at(2026, 11, 1, 13, 0)),  # 20:00 EDT Saturday: closed
    ],
)
def test_window_follows_the_wall_clock_across_dst(zone: ZoneInfo, now: datetime, opening: datetime) -> None:
    assert QuietHours().opening(CHICAGO_NUMBER, (zone,), now) == opening


def test_florida_number_takes_its_zone_and_state_window(practice: Practice) -> None:
    assert state_of(FLORIDA_NUMBER) == "FL"
    assert state_of(CHICAGO_NUMBER) == "IL"  # the geocoder says "Chicago, IL"
    assert state_of("+16305550142") == "IL"  # ... or "Illinois"
    assert state_of("+442079460000") is None
    zones = recipient_zones(FLORIDA_NUMBER, None, practice)
    assert zones == (NEW_YORK,)
    hours = QuietHours.model_validate({"states": {"FL": {"start": "09:00", "end": "20:00"}}})
    # 08:30 EST in Miami: open by default, closed by Florida's window here until 09:00 EST.
    assert hours.opening(FLORIDA_NUMBER, zones, at(2026, 2, 2, 13, 30)) == at(2026, 2, 2, 14, 0)
    assert hours.opening(CHICAGO_NUMBER, (CHICAGO,), at(2026, 2, 2, 14, 30)) == at(2026, 2, 2, 14, 30)
    # 20:00 in Miami is closed whichever window applies.
    assert QuietHours().opening(FLORIDA_NUMBER, zones, at(2026, 2, 3, 1, 0)) == at(2026, 2, 3, 13, 0)


def test_recipient_zones_prefer_the_subscriber_then_the_area_code_then_the_practice(practice: Practice) -> None:
    assert recipient_zones(CHICAGO_NUMBER, "America/Los_Angeles", practice) == (ZoneInfo("America/Los_Angeles"),)
    assert recipient_zones("+14155550176", None, practice) == (ZoneInfo("America/Los_Angeles"),)
    # A number abroad has its own single zone too.
    assert recipient_zones("+442079460000", None, practice) == (ZoneInfo("Europe/London"),)
    # A toll-free number has no place at all: the practice's zone.
    assert recipient_zones("+18005550100", None, practice) == (practice.zone,)


@pytest.mark.parametrize(
    ("number", "now", "opening"),
    [
        # +1208, Idaho: Boise (MDT) or the panhandle (PDT). 08:00 PDT is 15:00 UTC; 13:05 UTC is 06:05 there.
        ("+12085550100", at(2026, 7, 6, 13, 5), at(2026, 7, 6, 15, 0)),
        ("+12085550100", at(2026, 7, 6, 15, 0), at(2026, 7, 6, 15, 0)),
        # 20:00 MDT in Boise (02:00 UTC) closes the window though it is 19:00 in the panhandle.
        ("+12085550100", at(2026, 7, 7, 2, 0), at(2026, 7, 7, 15, 0)),
        ("+12085550100", at(2026, 7, 7, 1, 59), at(2026, 7, 7, 1, 59)),
        # +1605, South Dakota: Central (CDT) in the east, Mountain (MDT) in the west; 08:00 MDT is 14:00 UTC.
        ("+16055550100", at(2026, 7, 6, 13, 0), at(2026, 7, 6, 14, 0)),
        ("+16055550100", at(2026, 7, 7, 1, 0), at(2026, 7, 7, 14, 0)),  # 20:00 CDT
        ("+16055550100", at(2026, 7, 7, 0, 59), at(2026, 7, 7, 0, 59)),
    ],
)
def test_an_area_code_over_several_zones_waits_for_the_window_in_all_of_them(
    practice: Practice, number: str, now: datetime, opening: datetime
) -> None:
    zones = recipient_zones(number, None, practice)
    assert len(zones) == 2 and practice.zone not in zones
    assert QuietHours().opening(number, zones, now) == opening


def test_zones_whose_windows_never_meet_have_no_opening() -> None:
    # Florida's 850 is all Eastern; say it were not: 08:00-08:30 in New York and Chicago never overlap.
    hours = QuietHours.model_validate({"states": {"FL": {"start": "08:00", "end": "08:30"}}})
    assert hours.opening("+18505550100", (NEW_YORK, CHICAGO), at(2026, 7, 6, 11, 0)) is None


@pytest.mark.parametrize(
    "window",
    [
        {"start": "07:59", "end": "20:00"},
        {"start": "08:00", "end": "21:01"},
        {"start": "12:00", "end": "12:00"},
        {"start": "08:00", "end": 1200},  # what YAML makes of an unquoted 20:00
    ],
)
def test_windows_stay_inside_the_federal_hours(window: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Window.model_validate(window)


def test_unknown_state_code_is_refused() -> None:
    with pytest.raises(ValidationError, match="state codes"):
        QuietHours.model_validate({"states": {"Florida": {}}})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        *[(word, "stop") for word in ("STOP", "stopall", "Unsubscribe", "CANCEL", "end", "QUIT", "revoke", "OptOut")],
        (" Stop. ", "stop"),
        ("opt-out", "stop"),
        ("please stop texting me", "stop"),
        ("Don't text me anymore", "stop"),
        ("remove me from this list", "stop"),
        ("cancel these messages", "stop"),
        ("I want to opt out", "stop"),
        *[(word, "start") for word in ("START", "yes", "Unstop")],
        *[(word, "help") for word in ("HELP", "info", "help?")],
        ("See you at the end of the week", None),
        ("Can I cancel my appointment on Friday?", None),
        ("Please don't stop, I love these", None),
        ("Thanks!", None),
    ],
)
def test_intent_of_inbound_texts(body: str, expected: str | None) -> None:
    assert intent(body) == expected


def test_stop_then_start_changes_every_marketing_text_at_once(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    sync_audience(settings, ledger)

    def status() -> str:
        return {s.address: s.status for s in ledger.subscribers("sms")}[CHICAGO_NUMBER]

    reply = handle_inbound(ledger, settings.practice, CHICAGO_NUMBER, "please stop texting me")
    assert reply is not None and reply.startswith("Oakview PT: ") and "START" in reply
    assert status() == "opted_out"
    # Importing the list again never undoes an opt-out.
    sync_audience(settings, ledger)
    assert status() == "opted_out"
    reply = handle_inbound(ledger, settings.practice, CHICAGO_NUMBER, "UNSTOP")
    assert reply is not None and "resubscribed" in reply
    assert status() == "subscribed"


def test_help_names_the_practice_and_changes_nothing(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    sync_audience(settings, ledger)
    before = ledger.subscribers("sms")
    reply = handle_inbound(ledger, settings.practice, CHICAGO_NUMBER, "HELP")
    assert reply == (
        "Oakview Physical Therapy: call +1 312 555 0142 or email hello@oakviewpt.com for help. "
        "Msg & data rates may apply. Reply STOP to opt out."
    )
    assert handle_inbound(ledger, settings.practice, CHICAGO_NUMBER, "See you Tuesday") is None
    assert ledger.subscribers("sms") == before
