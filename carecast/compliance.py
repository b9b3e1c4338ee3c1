"""US texting rules that do not depend on a provider: quiet hours at the recipient's location, and STOP/START/HELP.

Quiet hours (RULES.md "SMS compliance", 47 CFR 64.1200(c)(1)): a marketing text goes out only inside a window of
the *recipient's* local day, 08:00-20:00 by default (Florida's narrower rule and the federal 08:00-21:00 both hold).
The recipient's zone is their own (``Subscriber.timezone``), else every zone ``phonenumbers`` gives for the number's
area code (+1208 is Boise or Los Angeles time: the window is open only while it is open in all of them), else, for
a number with no place at all, the practice's. A state may have its own window (``states: {FL: ...}``); the state comes
from the area code through ``phonenumbers.geocoder`` ("Chicago, IL", "Florida"), so a number that moved with its
owner counts where its area code is, which is also how carriers and regulators read it. A recipient outside their
window is never dropped: :meth:`QuietHours.opening` says when they may be texted.

Inbound keywords: STOP and the other opt-out words (and plain-language revocations such as "please stop texting
me") stop every marketing text to the number at once; START, YES and UNSTOP opt back in; HELP and INFO get the
practice's contact details. :func:`handle_inbound` records the change in the ledger and returns the one reply
allowed, which carries no marketing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as number_zones
from pydantic import Field, field_validator, model_validator

from carecast.config import Practice
from carecast.ledger.contract import ChannelLedger
from carecast.strict import Strict

#: The federal bounds (47 CFR 64.1200(c)(1)): no window may open earlier or close later.
EARLIEST, LATEST = time(8, 0), time(21, 0)

_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
    "Connecticut": "CT", "Delaware": "DE", "District of Columbia": "DC", "Washington D.C.": "DC", "Florida": "FL",
    "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS",
    "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI",
    "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI",
    "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
}  # fmt: skip


class Window(Strict):
    """The part of a local day texts may go out: from ``start`` up to, not including, ``end``."""

    start: time = Field(time(8, 0), description="local opening time, HH:MM")
    end: time = Field(time(20, 0), description="local closing time, HH:MM")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted(cls, value: object) -> object:
        # Unquoted, YAML 1.1 reads 20:00 as the number 1200, which pydantic would take for 00:20.
        if isinstance(value, int | float):
            raise ValueError('a quoted time such as "20:00" (unquoted, YAML reads it as a number)')
        return value

    @model_validator(mode="after")
    def _within_the_law(self) -> Window:
        if not EARLIEST <= self.start < self.end <= LATEST:
            raise ValueError(
                f"a window inside 08:00-21:00 that opens before it closes (47 CFR 64.1200(c)(1)), "
                f"not {self.start:%H:%M}-{self.end:%H:%M}"
            )
        return self


class QuietHours(Strict):
    """``quiet_hours`` of an SMS channel: the default window and per-state windows (two-letter codes)."""

    default: Window = Window()
    states: dict[str, Window] = Field(default_factory=dict, description="windows by US state code, e.g. FL")

    @field_validator("states")
    @classmethod
    def _state_codes(cls, value: dict[str, Window]) -> dict[str, Window]:
        known = set(_STATES.values())
        unknown = sorted(code for code in value if code not in known)
        if unknown:
            raise ValueError(f"two-letter US state codes such as FL, not {', '.join(unknown)}")
        return value

    def window(self, number: str) -> Window:
        """The window for a recipient at ``number``: their state's when configured, else the default."""
        if not self.states:
            return self.default  # no need for the state (the geocoder is slow to load and large)
        state = state_of(number)
        return self.states.get(state, self.default) if state else self.default

    def opening(self, number: str, zones: Sequence[ZoneInfo], now: datetime) -> datetime | None:
        """The first moment (UTC) at or after ``now`` that ``number`` may be texted in every one of ``zones``:
        ``now`` when open in all; None when their windows never meet (a narrow window over zones hours apart)."""
        window = self.window(number)
        # Windows are combined in each zone, so they open at 08:00 on the wall clock whatever the UTC offset (DST).
        # Where they all meet, one of them has just opened (or it is now): the first such moment is the answer.
        starts = [
            datetime.combine(now.astimezone(zone).date() + timedelta(days=days), window.start, tzinfo=zone)
            for zone in zones
            for days in range(3)
        ]
        candidates = sorted(moment.astimezone(UTC) for moment in (now, *starts) if moment >= now)
        return next(
            (
                moment
                for moment in candidates
                if all(window.start <= moment.astimezone(zone).time() < window.end for zone in zones)
            ),
            None,
        )


def recipient_zones(number: str, timezone: str | None, practice: Practice) -> tuple[ZoneInfo, ...]:
    """Where the recipient's quiet hours are counted: ``timezone`` when known, else every zone of the number's area
    code (the recipient may be in any of them), else, for a number tied to no place, the practice's."""
    if timezone:
        return (ZoneInfo(timezone),)
    parsed = phonenumbers.parse(number, None)
    zones = tuple(
        ZoneInfo(zone) for zone in number_zones.time_zones_for_number(parsed) if zone != number_zones.UNKNOWN_TIMEZONE
    )
    # A number tied to no place (toll-free) gets every zone of its country: no clue where its owner is.
    if len(zones) == 1 or (zones and phonenumbers.is_number_geographical(parsed)):
        return zones
    return (practice.zone,)


def state_of(number: str) -> str | None:
    """The US state of ``number``'s area code ("FL"), or ``None`` outside the US or when unknown."""
    parsed = phonenumbers.parse(number, None)
    if phonenumbers.region_code_for_number(parsed) != "US":
        return None
    # Imported here: its place names cost ~100 MB, paid only by a run that texts a number with no zone of its own.
    from phonenumbers import geocoder

    place = geocoder.description_for_number(parsed, "en")
    # The geocoder says either "City, ST" or a state's name.
    city_state = re.fullmatch(r".+, ([A-Z]{2})", place)
    return city_state.group(1) if city_state else _STATES.get(place)


# -- inbound keywords ------------------------------------------------------------------------------------------

Intent = Literal["stop", "start", "help"]

#: RULES.md: each of these, alone, stops every marketing text.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

# Revocation "by any reasonable means" counts too. Within a sentence only the unambiguous words do: "end" or
# "cancel" inside "see you at the end of my appointment" or "cancel my visit" is no opt-out.
_REVOCATION = re.compile(
    r"\b(stop|stopall|unsubscribe|opt[\s-]?out|revoke)\b"
    r"|\b(don'?t|do not|never|no more)\s+(text|message|sms|contact)"
    r"|\b(remove|take)\s+me\s+(off|from)\b"
    r"|\b(cancel|end|quit)\s+(the\s+|these\s+|your\s+|all\s+)?(texts?|messages?|sms|alerts?|subscription)\b",
    re.IGNORECASE,
)
_NOT_A_REVOCATION = re.compile(r"\b(don'?t|do not|never)\s+stop\b", re.IGNORECASE)


def intent(body: str) -> Intent | None:
    """What an inbound text asks for: ``stop``, ``start``, ``help``, or ``None`` for anything else."""
    keyword = re.sub(r"[^A-Z]", "", body.upper())
    if keyword in STOP_WORDS:
        return "stop"
    if keyword in START_WORDS:
        return "start"
    if keyword in HELP_WORDS:
        return "help"
    if _REVOCATION.search(body) and not _NOT_A_REVOCATION.search(body):
        return "stop"
    return None


def handle_inbound(ledger: ChannelLedger, practice: Practice, from_number: str, body: str) -> str | None:
    """Act on a text received from ``from_number`` (E.164, as Twilio sends it) and return the reply to send.

    STOP words suppress every marketing text to the number (``opted_out``), START words lift that, HELP words
    change nothing; each gets its one confirmation, without marketing. Anything else returns ``None`` (no reply).
    Raises LedgerError when the ledger cannot record the change.
    """
    wanted = intent(body)
    sender = practice.short_name
    if wanted == "stop":
        ledger.suppress("sms", from_number, "opted_out", "replied with an opt-out request")
        return f"{sender}: You are unsubscribed and will receive no more messages from us. Reply START to resubscribe."
    if wanted == "start":
        ledger.unsuppress("sms", from_number)
        return f"{sender}: You are resubscribed. Msg & data rates may apply. Reply HELP for help, STOP to opt out."
    if wanted == "help":
        return (
            f"{practice.name}: call {practice.phone} or email {practice.email} for help. "
            "Msg & data rates may apply. Reply STOP to opt out."
        )
    return None
