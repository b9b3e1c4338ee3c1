"""Observances: the RULES.md dates as data, when they become items, time zones, and invalid rules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from carecast.config import ObservanceSource, Settings, read_yaml
from carecast.errors import ConfigError
from carecast.sources import SourceResult, read_source
from carecast.sources.observances import DateRule, load_observances, parse_rule
from tests.conftest import SAMPLE_CONFIG

SETTINGS = Settings.model_validate(
    {**read_yaml(SAMPLE_CONFIG / "carecast.yaml"), "channels": {}, "base_dir": SAMPLE_CONFIG}
)
SAMPLE = ObservanceSource.model_validate({"type": "observances"})


def due(today: date, *, source: ObservanceSource = SAMPLE, settings: Settings = SETTINGS) -> SourceResult:
    return read_source("observances", source, settings, today=today)


def in_zone(zone: str) -> Settings:
    return SETTINGS.model_copy(update={"practice": SETTINGS.practice.model_copy(update={"timezone": zone})})


# RULES.md "Recognition observances", worked out on a calendar for 2026 and 2027.
EXPECTED = {
    "patient-recognition-week": [(date(2026, 2, 1), date(2026, 2, 7)), (date(2027, 2, 1), date(2027, 2, 7))],
    "employee-appreciation-day": [(date(2026, 3, 6), date(2026, 3, 6)), (date(2027, 3, 5), date(2027, 3, 5))],
    "doctors-day": [(date(2026, 3, 30), date(2026, 3, 30)), (date(2027, 3, 30), date(2027, 3, 30))],
    "nurses-week": [(date(2026, 5, 6), date(2026, 5, 12)), (date(2027, 5, 6), date(2027, 5, 12))],
    "hospital-week": [(date(2026, 5, 10), date(2026, 5, 16)), (date(2027, 5, 9), date(2027, 5, 15))],
    "world-pt-day": [(date(2026, 9, 8), date(2026, 9, 8)), (date(2027, 9, 8), date(2027, 9, 8))],
    "pt-month": [(date(2026, 10, 1), date(2026, 10, 31)), (date(2027, 10, 1), date(2027, 10, 31))],
}


def test_sample_file_has_the_rules_md_dates_for_2026_and_2027() -> None:
    observances = {o.slug: o for o in load_observances(SAMPLE_CONFIG / "observances.yaml")}
    assert sorted(observances) == sorted(EXPECTED)
    for slug, spans in EXPECTED.items():
        assert [observances[slug].rule.span(year) for year in (2026, 2027)] == spans, slug


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("March 30", DateRule(3, day=30)),
        ("February 1-7", DateRule(2, day=1, days=7)),
        ("  february 1 \u2013 7 ", DateRule(2, day=1, days=7)),
        ("First Friday of March", DateRule(3, weekday=4, nth=1)),
        ("last Monday of May", DateRule(5, weekday=0, nth=-1)),
        ("week starting the second Sunday of May", DateRule(5, weekday=6, nth=2, days=7)),
        ("October", DateRule(10, days=None)),
    ],
)
def test_parse_rule(text: str, rule: DateRule) -> None:
    assert parse_rule(text) == rule


def test_last_weekday_and_weeks_running_into_the_next_month() -> None:
    assert parse_rule("last Monday of May").span(2026) == (date(2026, 5, 25), date(2026, 5, 25))
    assert parse_rule("week starting the last Sunday of December").span(2026) == (date(2026, 12, 27), date(2027, 1, 2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Febtober 1-7", "a month name"),
        ("February 30", "days between 1 and 28"),
        ("February 29", "days between 1 and 28"),
        ("May 12-6", "the first before the last"),
        ("first Funday of March", "a weekday name"),
        ("fifth Friday of March", "a rule such as"),
        ("every day", "a rule such as"),
        (7, "a rule such as"),
    ],
)
def test_parse_rule_refuses_what_it_cannot_mean(text: object, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        parse_rule(text)


def test_an_observance_is_due_from_lead_days_before_its_start_to_its_end() -> None:
    assert [item.id for item in due(date(2026, 1, 17)).items] == []
    (item,) = due(date(2026, 1, 18)).items  # 14 days before February 1
    assert item.id == "observance:patient-recognition-week:2026"
    assert item.kind == "observance" and item.source == "observances"
    assert item.campaign == "prw_2026"
    assert item.url == "https://www.oakviewpt.com/patient-recognition-week"
    assert item.published == datetime(2026, 2, 1, 6, tzinfo=UTC)  # midnight in Chicago (CST, UTC-6)
    assert item.summary_text.startswith("It's National Patient Recognition Week!")
    assert item.summary_html.startswith("<p>It&#x27;s National")
    assert item.tags == ("PatientRecognitionWeek",)
    assert [i.id for i in due(date(2026, 2, 7)).items] == ["observance:patient-recognition-week:2026"]
    assert due(date(2026, 2, 8)).items == []


def test_overlapping_observances_and_a_whole_month() -> None:
    assert {item.id for item in due(date(2026, 5, 10)).items} == {
        "observance:nurses-week:2026",
        "observance:hospital-week:2026",
    }
    (month,) = due(date(2026, 10, 31)).items
    assert month.id == "observance:pt-month:2026" and month.campaign == "nptm_2026"


def test_the_lead_reaches_into_next_year() -> None:
    source = ObservanceSource(type="observances", lead_days=60)
    assert [item.id for item in due(date(2026, 12, 20), source=source).items] == [
        "observance:patient-recognition-week:2027"
    ]


def test_published_is_local_midnight_of_the_start_in_utc() -> None:
    (nurses,) = [i for i in due(date(2026, 5, 6)).items if i.id.startswith("observance:nurses-week")]
    assert nurses.published == datetime(2026, 5, 6, 5, tzinfo=UTC)  # Chicago in May is CDT, UTC-5
    (prw,) = due(date(2026, 2, 1), settings=in_zone("Pacific/Auckland")).items
    # Auckland is UTC+13 in February: the week starts there while it is still January 31 in UTC.
    assert prw.published == datetime(2026, 1, 31, 11, tzinfo=UTC)


def test_a_week_spanning_new_year_belongs_to_the_year_it_starts(tmp_path: Path) -> None:
    file = tmp_path / "observances.yaml"
    rule = {"slug": "year-end", "title": "Year-end week", "rule": "week starting the last Sunday of December"}
    file.write_text(yaml.safe_dump({"observances": [{**rule, "campaign": "ye", "message": "Bye 2026"}]}))
    source = ObservanceSource(type="observances", file=file, lead_days=0)
    (item,) = due(date(2027, 1, 2), source=source).items
    assert item.id == "observance:year-end:2026" and item.campaign == "ye_2026" and item.url is None


def test_invalid_file_is_a_config_error_naming_file_and_keys(tmp_path: Path) -> None:
    file = tmp_path / "observances.yaml"
    good = {"title": "T", "rule": "March 30", "campaign": "t", "message": "m"}
    file.write_text(
        yaml.safe_dump(
            {
                "observances": [
                    {"slug": "a", **good},
                    {"slug": "b", **good, "url": "javascript:alert(1)"},
                    {"slug": "c", **good, "colour": "blue"},
                    {"slug": "d", **good, "rule": "the Ides of March"},
                    {"slug": "e", "title": "No rule", "campaign": "e", "message": "m"},
                ]
            }
        )
    )
    source = ObservanceSource.model_validate({"type": "observances", "file": file})
    with pytest.raises(ConfigError) as caught:
        due(date(2026, 3, 1), source=source)
    assert caught.value.file == file
    keys = [key for key, _ in caught.value.problems]
    assert keys == ["observances[1].url", "observances[2].colour", "observances[3].rule", "observances[4].rule"]
    assert "the Ides of March" in dict(caught.value.problems)["observances[3].rule"]
    assert str(file) in str(caught.value)


def test_repeated_slugs_and_a_missing_file_are_config_errors(tmp_path: Path) -> None:
    file = tmp_path / "observances.yaml"
    entry = {"slug": "same", "title": "T", "rule": "March 30", "campaign": "t", "message": "m"}
    file.write_text(yaml.safe_dump({"observances": [entry, entry]}))
    with pytest.raises(ConfigError, match="repeated: same"):
        load_observances(file)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_observances(tmp_path / "missing.yaml")
