"""A practice's subscribers per channel, with the consent record each send relies on.

``config/audience/<channel type>.csv`` holds one subscriber a row: the address (``email`` for the newsletter,
``phone`` in E.164 for SMS), name, when, how and to what wording they consented, their status, and for SMS their
time zone (quiet hours are the recipient's). Marketing texts need prior express written consent (RULES.md "SMS
compliance"), so a row without a complete consent record is loaded but never sent to.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from carecast.errors import ConfigError
from carecast.model import utc

Status = Literal["subscribed", "unsubscribed", "bounced", "opted_out", "invalid"]
STATUSES: tuple[str, ...] = get_args(Status)

#: The address column of each channel type's file.
ADDRESS_COLUMN = {"newsletter": "email", "sms": "phone"}
CONSENT_COLUMNS = ("consent_at", "consent_method", "consent_text")
OPTIONAL_COLUMNS = {"sms": ("timezone",)}


@dataclass(frozen=True)
class Subscriber:
    """One recipient and their consent record; ``consent_at`` is UTC, ``None`` when no consent is on file."""

    address: str
    name: str
    consent_at: datetime | None
    consent_method: str
    consent_text: str
    status: Status
    timezone: str | None = None
    #: A provider's business email (an audience of kind ``providers``): CAN-SPAM asks for no prior consent, only
    #: that every opt-out is honoured.
    business_contact: bool = False
    #: Why an audience leaves them out although their own record would allow a send (e.g. "in the providers
    #: audience"); None for the subscriber files.
    excluded: str | None = None

    @property
    def exclusion_reason(self) -> str | None:
        """Why nothing may be sent to this subscriber, or ``None`` when something may."""
        if self.excluded is not None:
            return self.excluded
        if self.consent_at is None and not self.business_contact:
            return "no consent on file"
        if self.status != "subscribed":
            return f"status is {self.status}"
        return None

    @property
    def can_receive(self) -> bool:
        """Consent is on file and the subscriber is still subscribed."""
        return self.exclusion_reason is None


@dataclass(frozen=True)
class AudienceFile:
    """What a subscriber file held: the valid rows, and each rejected one's problems (``row <line>.<column>``)."""

    file: Path
    subscribers: list[Subscriber]
    rejected: list[tuple[str, str]]


def load_audience(folder: Path, channel_type: str) -> list[Subscriber]:
    """Read ``<folder>/<channel_type>.csv``, the practice's own list, which must be entirely valid.

    Raises ConfigError naming the file and every problem in it, as ``row <line>.<column>`` (the line number a
    spreadsheet shows, the header being line 1), ``header``, or the file itself when it cannot be read.
    """
    audience = read_audience(folder / f"{channel_type}.csv", channel_type)
    if audience.rejected:
        raise ConfigError(audience.file, audience.rejected)
    return audience.subscribers


def read_audience(file: Path, channel_type: str) -> AudienceFile:
    """Read a subscriber file, keeping the valid rows and reporting each rejected row with why.

    Raises ConfigError when the file as a whole cannot be used (unreadable, not CSV, wrong header, unknown type).
    """
    address_column = ADDRESS_COLUMN.get(channel_type)
    if address_column is None:
        known = ", ".join(sorted(ADDRESS_COLUMN))
        raise ConfigError(file, [("", f"an audience exists only for channel types {known}, not {channel_type!r}")])
    try:
        with file.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.DictReader(stream)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except OSError as exc:
        raise ConfigError(file, [("", f"cannot be read: {exc.strerror or exc}")]) from exc
    except csv.Error as exc:
        raise ConfigError(file, [("", f"is not valid CSV: {exc}")]) from exc
    required = (address_column, "name", *CONSENT_COLUMNS, "status")
    _check_header(file, header, required, OPTIONAL_COLUMNS.get(channel_type, ()))
    problems: list[tuple[str, str]] = []
    subscribers: list[Subscriber] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        row_problems: list[tuple[str, str]] = []
        subscriber = _subscriber(row, address_column, row_problems)
        if subscriber is not None and subscriber.address in seen:
            row_problems.append((address_column, f"{subscriber.address} appears on an earlier row"))
        problems.extend((f"row {line}.{column}", expectation) for column, expectation in row_problems)
        if subscriber is not None and not row_problems:
            seen.add(subscriber.address)
            subscribers.append(subscriber)
    return AudienceFile(file, subscribers, problems)


def _check_header(file: Path, header: list[str], required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    missing = [column for column in required if column not in header]
    unknown = [column for column in header if column not in (*required, *optional)]
    problems = [("header", f"column {column!r} is missing") for column in missing]
    problems += [
        ("header", f"unknown column {column!r} (known: {', '.join((*required, *optional))})") for column in unknown
    ]
    if problems:
        raise ConfigError(file, problems)


def _subscriber(row: dict[str, str | None], address_column: str, problems: list[tuple[str, str]]) -> Subscriber | None:
    # Collects every problem of the row into ``problems``; returns the subscriber only when there are none.
    if None in row:
        problems.append(("cells", "more cells than the header has columns"))
    cells = {key: (value or "").strip() for key, value in row.items() if key is not None}
    address = _address(address_column, cells[address_column], problems)
    consent_at = _consent(cells, problems)
    status = cells["status"]
    if status not in STATUSES:
        problems.append(("status", f"one of {', '.join(STATUSES)}, not {status!r}"))
    timezone = cells.get("timezone") or None
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(("timezone", f"an IANA time zone such as America/Chicago, or empty, not {timezone!r}"))
    if problems or address is None:
        return None
    return Subscriber(
        address=address,
        name=cells["name"],
        consent_at=consent_at,
        consent_method=cells["consent_method"],
        consent_text=cells["consent_text"],
        status=cast(Status, status),
        timezone=timezone,
    )


def _address(column: str, value: str, problems: list[tuple[str, str]]) -> str | None:
    if column == "email":
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            problems.append((column, f"an email address, not {value!r} ({exc})"))
            return None
    try:
        return e164(value)
    except ValueError as exc:
        problems.append((column, str(exc)))
        return None


def e164(value: str) -> str:
    """``value`` when it is a valid phone number written in E.164 form (``+13125550142``).

    Raises ValueError saying what is expected otherwise.
    """
    expected = f"a valid phone number in E.164 form such as +13125550142, not {value!r}"
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{expected} ({exc})") from exc
    written_e164 = value == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not written_e164 or not phonenumbers.is_valid_number(number):
        raise ValueError(expected)
    return value


def _consent(cells: dict[str, str], problems: list[tuple[str, str]]) -> datetime | None:
    given = [column for column in CONSENT_COLUMNS if cells[column]]
    if not given:
        return None
    if len(given) < len(CONSENT_COLUMNS):
        for column in CONSENT_COLUMNS:
            if column not in given:
                problems.append((column, "required when any consent field is given (when, how and the wording)"))
        return None
    try:
        return utc(datetime.fromisoformat(cells["consent_at"]))
    except ValueError:
        problems.append(
            (
                "consent_at",
                f"an ISO date and time with its zone, e.g. 2025-03-02T10:15:00-06:00, not {cells['consent_at']!r}",
            )
        )
        return None
