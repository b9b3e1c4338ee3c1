"""A practice's audiences (``audiences:`` in its config): who each newsletter or SMS channel addresses.

An audience is a kind of people (``patients``, ``providers``, ``community``, ``other``) read from one or more CSV
files, each through a column mapping (an EMR's "discharged patients" report keeps its own column names), with
segments by columns (``discharged_after: 12 months``, ``tags: [orthopedics]``). The files are streamed row by row
at each send, so an export of 20,000 patients is never held in memory; a row that cannot be used is skipped and
counted with its reason, never silently.

Consent follows the kind: patients, community and other people need the consent record the subscriber files have
(RULES.md "SMS compliance"); providers may be reached at their business email without one, CAN-SPAM's opt-out
still applying (every unsubscribe is honoured). Providers are never texted from an audience.

Items are routed to audiences by their front matter or observance (``audiences: [providers]``) or by a feed
category an audience lists in ``item_tags``; an item that names none goes to every audience that takes
``unrouted`` items (all but providers, by default).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal, cast

from dateutil.relativedelta import relativedelta
from email_validator import EmailNotValidError, validate_email
from pydantic import Field, field_validator, model_validator

from carecast.audience import ADDRESS_COLUMN, STATUSES, Status, Subscriber, e164
from carecast.errors import ConfigError
from carecast.model import utc
from carecast.strict import Strict

Kind = Literal["patients", "providers", "community", "other"]
#: What an item names to reach every audience and the public channels alike.
EVERYONE = "all"
#: The fields a column mapping may fill, each from one CSV column.
FIELDS = (
    "email",
    "phone",
    "name",
    "first_name",
    "last_name",
    "consent_at",
    "consent_method",
    "consent_text",
    "status",
    "timezone",
    "discharged",
    "tags",
)
_RELATIVE = re.compile(r"^(\d{1,4})\s*(day|week|month|year)s?$")


def relative_date(value: str, today: date) -> date:
    """``today`` less ``value`` ("3 months", "12 months", "90 days", "1 year"), or ``value`` as an ISO date.

    Raises ValueError saying what is expected.
    """
    match = _RELATIVE.match(value.strip().lower())
    if match is None:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"a span such as '3 months' or '90 days', or a date such as 2026-01-31, not {value!r}"
            ) from None
    count, unit = int(match.group(1)), match.group(2)
    return today - relativedelta(**{f"{unit}s": count})


class AudienceFileConfig(Strict):
    """One CSV file of an audience and how its columns map to CareCast's fields."""

    file: Path = Field(description="relative to the config folder")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="CareCast field -> the file's column; a field not mapped is read from a column of its own name",
    )
    date_format: str = Field("%Y-%m-%d", description="how the file writes dates (discharged), e.g. %m/%d/%Y")
    tag_separator: str = Field(";", min_length=1, description="between the tags of one cell")

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})")
        return value


class Segment(Strict):
    """Who of an audience a channel addresses, by their columns; every condition given must hold."""

    discharged_after: str | None = Field(None, description="discharged at most this long ago: '12 months' or a date")
    discharged_before: str | None = Field(None, description="discharged at least this long ago: '3 months' or a date")
    tags: list[str] = Field(default_factory=list, description="has at least one of these tags")

    @field_validator("discharged_after", "discharged_before")
    @classmethod
    def _a_span(cls, value: str | None) -> str | None:
        if value is not None:
            relative_date(value, date(2000, 1, 1))
        return value

    def reason_out(self, member: Member, today: date) -> str | None:
        """Why ``member`` is outside this segment on ``today``, or None when they are in it."""
        if self.discharged_after or self.discharged_before:
            if member.discharged is None:
                return "no discharge date"
            if self.discharged_after and member.discharged < relative_date(self.discharged_after, today):
                return "discharged before the segment's window"
            if self.discharged_before and member.discharged > relative_date(self.discharged_before, today):
                return "discharged after the segment's window"
        wanted = {tag.lower() for tag in self.tags}
        if wanted and not wanted & member.tags:
            return "none of the segment's tags"
        return None


class AudienceConfig(Strict):
    """``audiences.<name>``: one group of people the practice serves."""

    kind: Kind
    files: list[AudienceFileConfig] = Field(min_length=1)
    consent: Literal["on_file", "business"] | None = Field(
        None,
        description="on_file: a consent record per person (patients, community, other); business: providers' "
        "business email, CAN-SPAM's opt-out only (the default for providers)",
    )
    segments: dict[str, Segment] = Field(default_factory=dict)
    item_tags: list[str] = Field(default_factory=list, description="feed categories or tags that route an item here")
    unrouted: bool | None = Field(None, description="takes items that name no audience (default: all but providers)")
    exclude: list[str] = Field(
        default_factory=list, description="audiences whose people never get this one's messages (e.g. providers)"
    )

    @model_validator(mode="after")
    def _consent_by_kind(self) -> AudienceConfig:
        if self.consent == "business" and self.kind != "providers":
            raise ValueError(f"consent 'business' is for providers only; {self.kind} need their consent on file")
        return self

    @property
    def business(self) -> bool:
        return (self.consent or ("business" if self.kind == "providers" else "on_file")) == "business"

    @property
    def takes_unrouted(self) -> bool:
        return self.kind != "providers" if self.unrouted is None else self.unrouted


def routed_to(
    item_audiences: Sequence[str],
    item_tags: Sequence[str],
    audiences: dict[str, AudienceConfig],
    channel_type: str,
    audience: str | None,
) -> bool:
    """Whether an item (its ``audiences`` and tags) is for a channel of ``channel_type`` addressing ``audience``.

    An item names audiences by name or kind (or ``all``), or reaches one through a tag its ``item_tags`` list. An
    item routed nowhere goes to every audience taking unrouted items. A channel without an audience addresses its
    subscriber file (patients) when it is a newsletter or SMS channel, else the public (community).
    """
    wanted = {name.lower() for name in item_audiences}
    tags = {tag.lower() for tag in item_tags}
    wanted |= {name for name, config in audiences.items() if tags & {tag.lower() for tag in config.item_tags}}
    addressed = audiences.get(audience) if audience is not None else None
    if not wanted:
        return addressed is None or addressed.takes_unrouted
    if EVERYONE in wanted:
        return True
    if addressed is None:
        return ("patients" if channel_type in ADDRESS_COLUMN else "community") in wanted
    return audience in wanted or addressed.kind in wanted


@dataclass(frozen=True)
class Member:
    """One person of an audience file, as far as a channel needs them."""

    subscriber: Subscriber
    discharged: date | None
    tags: frozenset[str]
    #: Every valid address of the row (email and phone): an audience excluding another leaves out anyone sharing
    #: one, whichever the channel uses.
    addresses: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Selected:
    """A person a channel's audience (and segment) selected, or left out with ``skipped`` (the reason)."""

    subscriber: Subscriber
    skipped: str | None = None


def check_audiences(
    audiences: dict[str, AudienceConfig], addressed: Sequence[tuple[str, str, str, str | None]], base: Path
) -> list[tuple[str, str]]:
    """Problems of the audiences and of the channels addressing them: ``addressed`` holds each channel's name, type,
    audience and segment. Files are opened for their header only. Returns (key, expectation) pairs."""
    problems: list[tuple[str, str]] = []
    for name, declared in audiences.items():
        for other in declared.exclude:
            if other not in audiences or other == name:
                problems.append((f"audiences.{name}.exclude", f"another audience's name, not {other!r}"))
        for number, source in enumerate(declared.files):
            problems += _header_problems(f"audiences.{name}.files.{number}", source, base, declared)
    for channel, channel_type, wanted, segment in addressed:
        key = f"channels.{channel}"
        audience = audiences.get(wanted)
        if audience is None:
            problems.append(
                (f"{key}.audience", f"one of the audiences ({', '.join(sorted(audiences))}), not {wanted!r}")
            )
            continue
        if segment is not None and segment not in audience.segments:
            known = ", ".join(sorted(audience.segments)) or "none defined"
            problems.append((f"{key}.segment", f"a segment of audience {wanted} ({known}), not {segment!r}"))
        if channel_type == "sms" and audience.business:
            problems.append((f"{key}.audience", "a text needs prior express written consent: not a business list"))
        column = ADDRESS_COLUMN.get(channel_type)
        if column is None:
            problems.append((f"{key}.audience", "only newsletter and sms channels address an audience"))
        elif not any(column in _mapped(source, _header(source, base)) for source in audience.files):
            problems.append((f"{key}.audience", f"audience {wanted} has no file with a {column} column"))
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", channel):
            # It names the list's opt-outs (newsletter:<name>) and the run's artifacts (lower case and dashes only).
            problems.append((key, "a name of at most 40 lower-case letters, digits and dashes"))
    return problems


def _header(source: AudienceFileConfig, base: Path) -> list[str]:
    file = source.file if source.file.is_absolute() else base / source.file
    try:
        with file.open(encoding="utf-8-sig", newline="") as stream:
            return next(csv.reader(stream), [])
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def _mapped(source: AudienceFileConfig, header: list[str]) -> dict[str, str]:
    """Field -> column for the fields this file has: as mapped, else a column of the field's own name."""
    mapped = {field: column for field, column in source.columns.items() if column in header}
    mapped.update({field: field for field in FIELDS if field not in source.columns and field in header})
    return mapped


def _header_problems(
    key: str, source: AudienceFileConfig, base: Path, audience: AudienceConfig
) -> list[tuple[str, str]]:
    file = source.file if source.file.is_absolute() else base / source.file
    if not file.is_file():
        return [(f"{key}.file", f"no such file: {file}")]
    header = _header(source, base)
    problems = [
        (f"{key}.columns.{field}", f"a column of {file.name} ({', '.join(header)}), not {column!r}")
        for field, column in source.columns.items()
        if column not in header
    ]
    mapped = _mapped(source, header)
    if "email" not in mapped and "phone" not in mapped:
        problems.append((f"{key}.columns", "an email or phone column"))
    if not audience.business and not {"consent_at", "consent_method", "consent_text"} <= set(mapped):
        problems.append((f"{key}.columns", "consent_at, consent_method and consent_text: this kind needs consent"))
    if (
        any(s.discharged_after or s.discharged_before for s in audience.segments.values())
        and "discharged" not in mapped
    ):
        problems.append((f"{key}.columns.discharged", "the discharge date column its segments read"))
    return problems


def stream_members(
    audience: AudienceConfig, channel_type: str, base: Path
) -> Iterator[tuple[Member | None, str | None]]:
    """Each row of the audience's files that have ``channel_type``'s address column, one at a time: the member,
    or None with why the row cannot be used (``file row N: ...``). The same address twice is yielded once.

    Raises ConfigError when a file cannot be read.
    """
    column = ADDRESS_COLUMN[channel_type]
    seen: set[str] = set()
    for source in audience.files:
        file = source.file if source.file.is_absolute() else base / source.file
        try:
            with file.open(encoding="utf-8-sig", newline="") as stream:
                reader = csv.reader(stream)
                header = next(reader, [])
                mapped = _mapped(source, header)
                if column not in mapped:
                    continue
                where = {field: header.index(name) for field, name in mapped.items()}
                for line, cells in enumerate(reader, start=2):
                    member, problem = _member(cells, where, column, source, audience.business)
                    if member is None:
                        yield None, f"{file.name} row {line}: {problem}"
                    elif member.subscriber.address not in seen:
                        seen.add(member.subscriber.address)
                        yield member, None
        except OSError as exc:
            raise ConfigError(file, [("", f"cannot be read: {exc.strerror or exc}")]) from exc
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(file, [("", f"is not valid UTF-8 CSV: {exc}")]) from exc


def _member(
    cells: list[str], where: dict[str, int], column: str, source: AudienceFileConfig, business: bool
) -> tuple[Member | None, str | None]:
    """One row read through its mapping: the member, or None and why not (the reason names no one)."""

    def cell(field: str) -> str:
        index = where.get(field)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    raw = cell(column)
    if not raw:
        return None, f"no {column}"
    try:
        address = e164(raw) if column == "phone" else _email(raw)
    except ValueError:
        return None, f"not a valid {column}"
    name = cell("name") or " ".join(part for part in (cell("first_name"), cell("last_name")) if part)
    status = cell("status").lower() or "subscribed"
    if status not in STATUSES:
        return None, f"status is not one of {', '.join(STATUSES)}"
    consent_at = None
    if all(cell(field) for field in ("consent_at", "consent_method", "consent_text")):
        try:
            consent_at = _moment(cell("consent_at"))
        except ValueError:
            return None, "consent_at is not an ISO date and time with its zone"
    discharged = None
    if cell("discharged"):
        try:
            discharged = datetime.strptime(cell("discharged"), source.date_format).date()
        except ValueError:
            return None, f"the discharge date is not written as {source.date_format}"
    subscriber = Subscriber(
        address=address,
        name=name,
        consent_at=consent_at,
        consent_method=cell("consent_method"),
        consent_text=cell("consent_text"),
        status=cast(Status, status),
        timezone=cell("timezone") or None,
        business_contact=business,
    )
    tags = frozenset(tag.strip().lower() for tag in cell("tags").split(source.tag_separator) if tag.strip())
    other = "phone" if column == "email" else "email"
    return Member(subscriber, discharged, tags, frozenset([address, *_valid(other, cell(other))])), None


def _valid(column: str, value: str) -> list[str]:
    """``value`` as the address ``column`` holds, normalised; nothing when it is empty or not valid."""
    if not value:
        return []
    try:
        return [e164(value) if column == "phone" else _email(value)]
    except ValueError:
        return []


def _email(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc


def _moment(value: str) -> datetime:
    return utc(datetime.fromisoformat(value))


def tally(audience: AudienceConfig, base: Path) -> tuple[dict[str, int], list[str]]:
    """How many people of ``audience`` each channel type can address (``{"newsletter": 120, "sms": 80}``), and the
    rows that cannot be used with why (``file row N: ...``), for ``carecast check``.

    Raises ConfigError when a file cannot be read.
    """
    counts: dict[str, int] = {}
    problems: list[str] = []
    for channel_type, column in ADDRESS_COLUMN.items():
        for member, problem in stream_members(audience, channel_type, base):
            if member is not None:
                counts[channel_type] = counts.get(channel_type, 0) + 1
            elif problem is not None and not problem.endswith(f": no {column}"):
                problems.append(problem)
    return counts, sorted(set(problems))
