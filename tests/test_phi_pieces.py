"""The PHI check of texts joined by blank lines, read a text at a time (each text's health terms and phone numbers
found once per run, :func:`carecast.phi_text.health_terms`, :func:`carecast.phi._phone_numbers`), finds exactly
what reading the joined text whole finds: on every sentence of the labelled, tuning and held-out sets, three at a
time and around phone numbers and terms at the joins."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from carecast import phi_text
from carecast.phi import PhiCheck

DATA = Path(__file__).parent / "data"
CHECK = PhiCheck(
    known_patients=["Dana Whitfield"],
    practice_phones=["+1 312 555 0142"],
    practice_domains=["oakviewpt.com"],
    staff=["Marcus Bell"],
    partners=["Oakview Physical Therapy", "Sunrise Orthopedics"],
)


def sentences() -> list[str]:
    found = []
    for name in ("phi_labelled", "phi_tuning", "phi_heldout"):
        data = yaml.safe_load((DATA / f"{name}.yaml").read_text(encoding="utf-8"))
        rows = data["sentences"] if isinstance(data, dict) else data
        for row in rows:
            found += [row["text"], *row.get("parts", []), *(row[key] for key in ("title", "alt") if row.get(key))]
    return found


def pieces_of(texts: list[str]) -> tuple[str, list[tuple[int, str]]]:
    pieces, position = [], 0
    for text in texts:
        pieces.append((position, text))
        position += len(text) + 2
    return "\n\n".join(texts), pieces


def test_every_set_read_a_text_at_a_time_finds_what_the_whole_text_does() -> None:
    texts = sentences()
    assert len(texts) > 300
    for start in range(0, len(texts), 3):
        joined, pieces = pieces_of(texts[start : start + 3])
        assert CHECK.check(joined, pieces=pieces) == CHECK.check(joined), texts[start : start + 3]


@pytest.mark.parametrize(
    "texts",
    [
        ["Call Dana Whitfield at 312", "555 0187 about her knee surgery."],
        ["Dana Whitfield, after her ACL", "reconstruction, is back.", "Text 312-555-0187."],
        ["Our patient", "Carlos Mendez beat his sciatica; reach him at 773-555-0123"],
        ["Front desk: 312-555-0142", "", "John Smith tore his meniscus. 312.555.0199 x12"],
    ],
)
def test_joins_split_nothing_and_join_nothing(texts: list[str]) -> None:
    joined, pieces = pieces_of(texts)
    assert CHECK.check(joined, pieces=pieces) == CHECK.check(joined)


def test_a_text_naming_no_one_is_checked_without_the_name_lists() -> None:
    """The name lists (0.1 s to read) are read for a run of capitalised words phi_terms.yaml cannot rule out: a
    fan-out's text naming no one ("Oakview PT", "National PT Month") is checked in a process that never reads them,
    and a name in it is still found."""
    phi_text.name_lists.cache_clear()
    check = PhiCheck(partners=["Oakview PT"])
    text = "Oakview PT: National PT Month: thank you for trusting us with your recovery. Reply STOP to opt out"
    assert check.check(text) == []
    assert phi_text.name_lists.cache_info().currsize == 0
    [finding] = check.check(text.replace("thank you", "thank you, Dana Whitfield,"))
    assert finding.person == "Dana Whitfield"
    assert phi_text.name_lists.cache_info().currsize == 1
