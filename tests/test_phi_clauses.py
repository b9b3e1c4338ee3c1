"""The PHI check's shortcuts find exactly what reading each text whole finds: health terms read a clause at a time
(:func:`carecast.phi_text.health_terms`), on every sentence of the labelled, tuning and held-out sets and on
generated texts of terms, punctuation and spaces; phone numbers looked for only in texts with digits enough for one
(:data:`carecast.phi.FEWEST_PHONE_DIGITS`, derived from phonenumbers' own metadata)."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata

from carecast import phi, phi_text
from tests.test_phi_pieces import sentences


def whole(text: str) -> dict[str, tuple[tuple[int, int, str], ...]]:
    found = phi_text.matchers()
    return {
        key: tuple((m.start(), m.end(), m.group()) for m in found[key].finditer(text)) for key in ("health", "context")
    }


def test_every_set_read_a_clause_at_a_time_finds_what_the_whole_text_does() -> None:
    texts = sentences()
    assert len(texts) > 300
    for text in texts:
        assert phi_text.health_terms(text) == whole(text), text


TERMS = sorted({*phi_text.terms()["health"], *phi_text.terms()["context"]})
PIECES = st.one_of(
    st.sampled_from(TERMS).map(lambda term: term.upper() if len(term) % 3 == 0 else term),
    st.sampled_from([" ", ".", ". ", ",", ":", "!", "?", ";", "(", ")", "\n", "\n\n", "-", "s", "es", "'s", "7"]),
    st.sampled_from(["Dana", "back", "knee", "é", "ß", "\u0130", "\u212a", "\u017f", "x2", "post", "op"]),
    st.text(max_size=3),
)


@settings(max_examples=600, deadline=None)
@given(st.lists(PIECES, max_size=30))
def test_clauses_find_what_the_whole_text_does(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert phi_text.health_terms.__wrapped__(text) == whole(text)


def test_fewest_phone_digits_is_what_phonenumbers_metadata_allows() -> None:
    """A number written with its country code shows the code's digits and its national number's, less those its
    region's national prefix rule adds; without one it is a US number, of 10 digits."""
    fewest = [10]
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        found = [PhoneMetadata.metadata_for_region_or_calling_code(code, region) for region in regions]
        metadata = [data for data in found if data is not None]
        shortest = min(min(data.general_desc.possible_length) for data in metadata)
        rules = [data.national_prefix_transform_rule or "" for data in metadata]
        added = max(len(re.sub(r"\\\d", "", rule)) for rule in rules)
        fewest.append(len(str(code)) + shortest - added)
    assert min(fewest) >= phi.FEWEST_PHONE_DIGITS


def test_digits_are_the_digits_phonenumbers_reads() -> None:
    assert phi._DIGIT.pattern == r"\d" and isinstance(phi._DIGIT, re.Pattern)  # phonenumbers' _PATTERN reads \d


@pytest.mark.parametrize(
    "text", ["Call 312-555-0187.", "+43 1234 today", "(tip 42) 1/4", "tel +49 30 1234", "+378 0549 123456"]
)
def test_texts_with_fewer_digits_hold_no_number(text: str) -> None:
    numbers = list(phonenumbers.PhoneNumberMatcher(text, "US"))
    assert phi._phone_numbers(text) == phi._phone_numbers.__wrapped__(text)
    assert bool(numbers) <= (len(re.findall(r"\d", text)) >= phi.FEWEST_PHONE_DIGITS)
