"""Recognition observances (Patient Recognition Week, PT Month, ...) as items, from date rules staff can edit.

``config/observances.yaml`` lists each observance with a rule written the way a calendar says it:

- ``March 30``: one fixed day; ``February 1-7``: a fixed range within a month;
- ``first Friday of March`` (also second, third, fourth, last): one day;
- ``week starting the second Sunday of May``: seven days from that day;
- ``October``: the whole month.

An observance becomes an item when the practice's local date is within ``lead_days`` before its start, or during
it. Its id is ``observance:<slug>:<year>``, so each year's is new and a poll within a year is not.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urljoin

from pydantic import Field, PlainValidator, ValidationError, field_validator

from carecast.config import ObservanceSource, Settings, expectation, read_yaml
from carecast.errors import ConfigError
from carecast.model import ContentItem, content_hash
from carecast.sources.result import SourceResult, written_item
from carecast.strict import Strict

MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
WEEKDAYS = {name.lower(): number for number, name in enumerate(calendar.day_name)}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
RULE_FORMS = (
    "a rule such as 'March 30', 'February 1-7', 'first Friday of March', "
    "'week starting the second Sunday of May' or 'October'"
)

_WORD = r"[a-z]+"
_NTH = rf"(?P<nth>{'|'.join(ORDINALS)}) (?P<weekday>{_WORD}) of (?P<month>{_WORD})"
_PATTERNS = (
    re.compile(rf"(?P<month>{_WORD}) (?P<day>\d{{1,2}})(?: ?[-\u2013] ?(?P<end>\d{{1,2}}))?"),
    re.compile(rf"(?P<week>week starting the )?{_NTH}"),
    re.compile(rf"(?P<month>{_WORD})"),
)


@dataclass(frozen=True)
class DateRule:
    """When an observance falls in a year: a fixed day, or the ``nth`` ``weekday`` of ``month``; for ``days``."""

    month: int
    day: int | None = None
    weekday: int | None = None
    nth: int = 1
    #: Length in days; None for the whole month.
    days: int | None = 1

    def span(self, year: int) -> tuple[date, date]:
        """First and last day (inclusive) of the observance in ``year``."""
        if self.days is None:
            return date(year, self.month, 1), date(year, self.month, calendar.monthrange(year, self.month)[1])
        if self.day is not None:
            start = date(year, self.month, self.day)
        else:
            matching = [
                day
                for day in calendar.Calendar().itermonthdates(year, self.month)
                if day.month == self.month and day.weekday() == self.weekday
            ]
            start = matching[self.nth - 1] if self.nth > 0 else matching[self.nth]
        return start, start + timedelta(days=self.days - 1)


def parse_rule(text: Any) -> DateRule:
    """The :class:`DateRule` a rule text says (case and extra spaces do not matter).

    Raises ValueError naming the accepted forms when the text is none of them or names an impossible date.
    """
    if not isinstance(text, str):
        raise ValueError(RULE_FORMS)
    words = " ".join(text.lower().split())
    match = next((found for pattern in _PATTERNS if (found := pattern.fullmatch(words))), None)
    if match is None:
        raise ValueError(f"{RULE_FORMS}, not {text!r}")
    parts = match.groupdict()
    month = MONTHS.get(parts["month"])
    if month is None:
        raise ValueError(f"a month name (January ... December), not {parts['month']!r} in {text!r}")
    if parts.get("weekday") is not None:
        weekday = WEEKDAYS.get(parts["weekday"])
        if weekday is None:
            raise ValueError(f"a weekday name (Monday ... Sunday), not {parts['weekday']!r} in {text!r}")
        return DateRule(month, weekday=weekday, nth=ORDINALS[parts["nth"]], days=7 if parts["week"] else 1)
    if parts.get("day") is None:
        return DateRule(month, days=None)
    first = int(parts["day"])
    last = int(parts["end"] or first)
    # February 29 would vanish in three years of four; a leap year bounds every other month's length.
    longest = 28 if month == 2 else calendar.monthrange(2000, month)[1]
    if not 1 <= first <= last <= longest:
        raise ValueError(f"days between 1 and {longest} of that month, the first before the last, not {text!r}")
    return DateRule(month, day=first, days=last - first + 1)


class Observance(Strict):
    """One entry of the observances file."""

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]*$", description="stable name, part of the item id")
    title: str = Field(min_length=1)
    rule: Annotated[DateRule, PlainValidator(parse_rule)]
    campaign: str = Field(pattern=r"^[a-z0-9_]+$", description="utm_campaign prefix: prw gives prw_2026")
    message: str = Field(min_length=1)
    url: str | None = Field(None, description="a page on the practice's site: a path such as /prw, or a full URL")
    tags: tuple[str, ...] = ()
    audiences: tuple[str, ...] = Field((), description="who it is for: audience names or kinds, or all")

    @field_validator("url")
    @classmethod
    def _page(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("/", "https://", "http://")):
            raise ValueError(f"a path starting with / or an http(s) URL, not {value!r}")
        return value


class ObservancesFile(Strict):
    observances: list[Observance]

    @field_validator("observances")
    @classmethod
    def _unique_slugs(cls, value: list[Observance]) -> list[Observance]:
        slugs = [observance.slug for observance in value]
        repeated = sorted({slug for slug in slugs if slugs.count(slug) > 1})
        if repeated:
            raise ValueError(f"each slug once; repeated: {', '.join(repeated)}")
        return value


def load_observances(file: Path) -> list[Observance]:
    """The observances of ``file``.

    Raises ConfigError naming the file and every bad key (e.g. ``observances[3].rule``) with what is expected.
    """
    try:
        return ObservancesFile.model_validate(read_yaml(file)).observances
    except ValidationError as exc:
        problems = [(_key_path(error["loc"]), expectation(error)) for error in exc.errors()]
        raise ConfigError(file, problems) from exc


def _key_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def read_observances(name: str, config: ObservanceSource, settings: Settings, *, today: date) -> SourceResult:
    """The observances due on ``today`` (the practice's local date): within ``lead_days`` of their start, or on.

    Raises ConfigError when the observances file is missing or invalid.
    """
    observances = load_observances(settings.path(config.file))
    lead = timedelta(days=config.lead_days)
    items = []
    # A rule may span New Year (a week starting late in December) and the lead may reach into next year.
    for year in (today.year - 1, today.year, today.year + 1):
        for observance in observances:
            start, end = observance.rule.span(year)
            if start - lead <= today <= end:
                items.append(_item(name, observance, year, start, end, settings))
    return SourceResult(items=items)


def _item(name: str, observance: Observance, year: int, start: date, end: date, settings: Settings) -> ContentItem:
    url = urljoin(str(settings.practice.website), observance.url) if observance.url else None
    return written_item(
        settings,
        title=observance.title,
        url=url,
        text=observance.message,
        first_day=start,
        id=f"observance:{observance.slug}:{year}",
        source=name,
        kind="observance",
        content_hash=content_hash(
            observance.title,
            observance.message,
            url or "",
            start.isoformat(),
            end.isoformat(),
            # Only when given: the hash of an observance for no one in particular stays what it was.
            *([",".join(observance.audiences)] if observance.audiences else []),
        ),
        campaign=f"{observance.campaign}_{year}",
        tags=observance.tags,
        audiences=observance.audiences,
        last_day=end,
    )
