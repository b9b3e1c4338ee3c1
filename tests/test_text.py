"""Text measures against RULES.md's values, the official twitter-text conformance suite, and properties."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from twitter_text import parse_tweet
from twitter_text.config import config as twitter_config

from carecast.errors import MeasureError
from carecast.text import (
    _units,
    add_utm,
    drop_emoji,
    flatten,
    shorten,
    shorten_middle,
    sms_measure,
    split_to_fit,
    to_gsm,
    transliterate_to_gsm,
    without_repeats,
    x_measure,
)

SHARED = Path(os.environ.get("CARECAST_SHARED", Path(__file__).parents[1].parent / "shared"))
CONFORMANCE = SHARED / "corpus/twitter-text/validate.yml"

# -- X -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "weighted", "valid"),
    [
        ("a" * 280, 280, True),
        ("a" * 281, 281, False),
        ("Visit example.com today", 35, True),
        ("\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", 2, True),
        ("cafe\u0301", 4, True),
        ("理学療法", 8, True),
        ("Don\u2019t miss it \u2014 30% off\u2026 \u2022 PT\u2122 \u20ac5", 37, True),
    ],
)
def test_x_rules_values(text: str, weighted: int, valid: bool) -> None:
    measure = x_measure(text)
    assert (measure.weighted_length, measure.valid) == (weighted, valid)


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=400) | st.sampled_from(["#1 http://a.co", "1/3 x"]))
def test_an_ascii_text_weighs_the_same_without_emoji_parsing(text: str) -> None:
    full = parse_tweet(text, twitter_config["version3"])
    assert (x_measure(text).weighted_length, x_measure(text).valid) == (full.weightedLength, full.valid)


def _conformance(group: str) -> list[Any]:
    if not CONFORMANCE.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"conformance suite absent: {CONFORMANCE}"))]
    cases = yaml.safe_load(CONFORMANCE.read_text(encoding="utf-8"))["tests"][group]
    return [pytest.param(case, id=case["description"][:60]) for case in cases]


def _check_case(case: dict[str, Any], version: int) -> None:
    measure = x_measure(case["text"], version)  # type: ignore[arg-type]
    expected = case["expected"]
    if "\r\n" in case["text"]:
        # The official library counts a CRLF as two, the Python port as one (corpus README): accept either.
        crlf = case["text"].count("\r\n")
        assert expected["weightedLength"] - crlf <= measure.weighted_length <= expected["weightedLength"]
    else:
        assert measure.weighted_length == expected["weightedLength"]
        assert measure.valid == expected["valid"]


@pytest.mark.parametrize("case", _conformance("WeightedTweetsCounterTest"))
def test_twitter_text_weighted_counter(case: dict[str, Any]) -> None:
    # Upstream runs this group with config v2, which counts each emoji code point.
    _check_case(case, 2)


@pytest.mark.parametrize("case", _conformance("WeightedTweetsWithDiscountedEmojiCounterTest"))
def test_twitter_text_discounted_emoji_counter(case: dict[str, Any]) -> None:
    _check_case(case, 3)


# -- SMS -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("a" * 159 + "€", "GSM-7", 161, 2),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),
        ("á" * 70, "UCS-2", 70, 1),
        ("á" * 71, "UCS-2", 71, 2),
        ("\U0001f389" * 35, "UCS-2", 70, 1),
        ("\U0001f389" * 36, "UCS-2", 72, 2),
        ("", "GSM-7", 0, 1),
    ],
)
def test_sms_rules_values(text: str, encoding: str, units: int, segments: int) -> None:
    measure = sms_measure(text)
    assert (measure.encoding, measure.units, measure.segments) == (encoding, units, segments)


@pytest.mark.parametrize("char", list("^{}\\[~]|€\f"))
def test_sms_extension_characters_cost_two_septets(char: str) -> None:
    assert sms_measure(char) == sms_measure("aa")


@pytest.mark.parametrize(
    ("char", "gsm"), [*((c, False) for c in "\u2019\u2026\u2014\u2022áíóúç\U0001f389"), *((c, True) for c in "ñéüà¡¿")]
)
def test_sms_charset(char: str, gsm: bool) -> None:
    assert (sms_measure(f"Hi {char}").encoding == "GSM-7") is gsm


def test_sms_curly_apostrophe_swap_gives_one_gsm_segment() -> None:
    text = (
        "Oakview PT: It\u2019s Patient Recognition Week! Thank you for trusting us with your recovery. "
        "Reply STOP to opt out."
    )
    assert (sms_measure(text).encoding, sms_measure(text).segments) == ("UCS-2", 2)
    swapped = to_gsm(text)
    assert swapped == text.replace("\u2019", "'")
    assert (sms_measure(swapped).encoding, sms_measure(swapped).segments) == ("GSM-7", 1)


def test_to_gsm_replaces_typography() -> None:
    assert to_gsm("\u201cGo\u201d \u2014 now\u2026 \u2022 \u2018ok\u2019") == "\"Go\" - now... - 'ok'"


GSM_BASIC = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"


@given(st.text(alphabet=GSM_BASIC + "^{}[]~|€", max_size=600))
def test_gsm_segments_monotonic_in_length(text: str) -> None:
    assert sms_measure(text).segments <= sms_measure(text + "a").segments


@given(st.text(alphabet=st.characters(min_codepoint=0x20, codec="utf-8")))
def test_ucs2_segments_monotonic_in_length(text: str) -> None:
    assert sms_measure(text).segments <= sms_measure(text + "\u00e1").segments


@given(st.integers(min_value=0, max_value=2000))
def test_plain_ascii_segments_follow_the_formula(length: int) -> None:
    expected = 1 if length <= 160 else math.ceil(length / 153)
    assert sms_measure("a" * length).segments == expected


@given(st.text(alphabet=GSM_BASIC + "€{}", min_size=161, max_size=800))
def test_gsm_segments_never_fewer_than_capacity_allows(text: str) -> None:
    measure = sms_measure(text)
    assert measure.segments >= math.ceil(measure.units / 153)
    assert measure.segments <= math.ceil(measure.units / 152)  # at most one septet lost per segment


# -- links ---------------------------------------------------------------------------------------------------------

HOST = "www.oakviewpt.com"


def test_add_utm_tags_own_links_lowercase() -> None:
    tagged = add_utm("https://www.oakviewpt.com/blog/knees", "Twitter", "Social", "PRW_2026", HOST)
    assert tagged == ("https://www.oakviewpt.com/blog/knees?utm_source=twitter&utm_medium=social&utm_campaign=prw_2026")


@pytest.mark.parametrize("url", ["https://OAKVIEWPT.com/a", "https://oakviewpt.com/a", "http://WWW.oakviewpt.com/a"])
def test_add_utm_host_ignores_case_and_www(url: str) -> None:
    assert add_utm(url, "sms", "sms", "c", HOST) == f"{url}?utm_source=sms&utm_medium=sms&utm_campaign=c"


@pytest.mark.parametrize(
    "url",
    ["https://apta.example/pt-month", "https://oakviewpt.com.evil.example/x", "/relative/path", "mailto:a@b.c"],
)
def test_add_utm_leaves_other_links_alone(url: str) -> None:
    assert add_utm(url, "sms", "sms", "c", HOST) == url


def test_add_utm_replaces_the_links_own_values_and_keeps_params_and_fragment() -> None:
    url = "https://www.oakviewpt.com/a?q=back%20pain&utm_campaign=Spring_Promo&utm_source=hubspot&b=#top"
    assert add_utm(url, "newsletter", "email", "oakview_blog", HOST) == (
        "https://www.oakviewpt.com/a?q=back%20pain&b=&utm_source=newsletter&utm_medium=email&utm_campaign=oakview_blog#top"
    )


def test_add_utm_never_doubles_a_tag() -> None:
    url = "https://www.oakviewpt.com/?UTM_SOURCE=a&utm_medium=b&utm_campaign=c"
    assert add_utm(url, "x", "y", "z", HOST) == "https://www.oakviewpt.com/?utm_source=x&utm_medium=y&utm_campaign=z"


# -- shortening and splitting ----------------------------------------------------------------------------------------


def test_shorten_cuts_on_a_word_boundary() -> None:
    assert shorten("Strong knees, happy hikes, and more", lambda text: len(text) <= 20) == "Strong knees, happy\u2026"


def test_shorten_keeps_text_that_fits() -> None:
    assert shorten("short", lambda text: len(text) <= 20) == "short"


def test_shorten_raises_when_nothing_fits() -> None:
    with pytest.raises(MeasureError):
        shorten("Unbelievably long first word", lambda text: len(text) <= 5, ellipsis="...")


@given(st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=12), min_size=1, max_size=60), st.integers(14, 120))
def test_shorten_result_fits_and_is_a_prefix(words: list[str], budget: int) -> None:
    text = " ".join(words)
    result = shorten(text, lambda candidate: len(candidate) <= budget)
    assert len(result) <= budget
    assert text.startswith(result.removesuffix("\u2026"))


def test_split_prefers_sentences() -> None:
    text = "Hello there. This is a long sentence with many words! And another one? Yes.\nNew line here"
    assert split_to_fit(text, lambda part: len(part) <= 30) == [
        "Hello there. This is a long",
        "sentence with many words!",
        "And another one? Yes.",
        "New line here",
    ]


def test_split_keeps_urls_whole() -> None:
    # twitter-text only knows real TLDs: a .example link is counted character by character, so use .com here.
    url = "https://www.oakviewpt.com/blog/a-very-long-path"
    parts = split_to_fit(f"Read it here {url} soon", lambda part: x_measure(part).weighted_length <= 30)
    assert any(url in part for part in parts)


def test_split_raises_on_a_word_too_long() -> None:
    with pytest.raises(MeasureError):
        split_to_fit("tiny enormousword", lambda part: len(part) <= 5)


@given(st.lists(st.sampled_from(["Knees.", "hips", "backs!", "walk", "a\nb", "shoulders?"]), min_size=1, max_size=80))
def test_split_parts_fit_and_keep_every_word(words: list[str]) -> None:
    text = " ".join(words)
    parts = split_to_fit(text, lambda part: len(part) <= 25)
    assert all(0 < len(part) <= 25 for part in parts)
    assert " ".join(parts).split() == text.split()


def test_split_measures_each_candidate_once_and_few_per_part() -> None:
    measured: list[str] = []

    def fits(part: str) -> bool:
        measured.append(part)
        return len(part) <= 60

    words = [f"word{n}" for n in range(400)]  # one sentence, far too long: split on words
    parts = split_to_fit(" ".join(words), fits)
    assert " ".join(parts).split() == words
    assert len(measured) == len(set(measured))
    # A part holds about ten words; a linear scan would measure every word of it, a galloping search a handful.
    assert len(measured) < len(words) // 2


def greedy_split(text: str, fits: Callable[[str], bool], first_fits: Callable[[str], bool]) -> list[str]:
    """The plain reference: whole units that fit, else words, each added to the part while it still fits (the first
    part judged by ``first_fits``, and left empty when not even its first piece fits there)."""
    judge = first_fits
    parts: list[str] = []
    current = ""
    for unit in _units(text):
        for piece in [unit] if fits(unit.strip()) else re.findall(r"\S+\s*", unit):
            if judge((current + piece).strip()):
                current += piece
            else:
                parts.append(current.strip())
                current, judge = piece, fits
    if current.strip() or not parts:
        parts.append(current.strip())
    return parts


@given(
    st.lists(
        st.sampled_from(["Knees.", "hips", "backs!", "walk", "stretch", "shoulders?", "a"]), min_size=1, max_size=120
    ),
    st.integers(min_value=12, max_value=60),
    st.integers(min_value=0, max_value=30),
)
def test_split_finds_the_parts_a_greedy_scan_finds(words: list[str], width: int, title: int) -> None:
    text = " ".join(words)

    def fits(part: str) -> bool:
        return len(part) <= width

    def first_fits(part: str) -> bool:
        return title + len(part) <= width

    assert split_to_fit(text, fits) == greedy_split(text, fits, fits)
    assert split_to_fit(text, fits, first_fits=first_fits) == greedy_split(text, fits, first_fits)


def test_split_keeps_a_list_item_with_its_number() -> None:
    text = "Small changes add up. 1. Screen at eye level. 2. Elbows at 90 degrees. 3. Feet flat."
    parts = split_to_fit(text, lambda part: len(part) <= 32)
    assert parts == ["Small changes add up.", "1. Screen at eye level.", "2. Elbows at 90 degrees.", "3. Feet flat."]


def test_split_never_leaves_a_part_that_is_only_a_link_or_hashtags() -> None:
    text = "Move every 30 minutes. https://oakviewpt.com/blog #PhysicalTherapy"
    parts = split_to_fit(text, lambda part: len(part) <= 80)
    assert parts == [text]


def test_split_gives_the_first_part_its_own_measure() -> None:
    parts = split_to_fit("One two. Three four.", lambda part: len(part) <= 20, first_fits=lambda part: len(part) <= 9)
    assert parts == ["One two.", "Three four."]
    assert split_to_fit("One two.", lambda part: len(part) <= 20, first_fits=lambda part: False) == ["", "One two."]


def test_shorten_middle_keeps_the_opening_and_the_last_sentence() -> None:
    text = "We moved. The new clinic is bigger and brighter and has parking for all. Call 312-555-0142 to book."
    assert shorten_middle(text, lambda t: len(t) <= 70, "...") == (
        "We moved. The new clinic is bigger and... Call 312-555-0142 to book."
    )
    assert shorten_middle("One long sentence without an end", lambda t: len(t) <= 20, "...") == "One long sentence..."


@pytest.mark.parametrize(
    ("text", "dropped"),
    [
        ("Stronger knees \U0001f4aa in six weeks!", "Stronger knees in six weeks!"),
        ("Family day \U0001f468\u200d\U0001f469\u200d\U0001f467 !", "Family day!"),
        ("Thanks \u2764\ufe0f and \U0001f44d\U0001f3fd.", "Thanks and."),
        ("Go \U0001f1fa\U0001f1f8 team, press 1\ufe0f\u20e3", "Go team, press"),
        ("No emoji here: 1 < 2 # 3", "No emoji here: 1 < 2 # 3"),
    ],
)
def test_drop_emoji_drops_whole_sequences(text: str, dropped: str) -> None:
    assert drop_emoji(text) == dropped


def test_transliterate_to_gsm_only_where_needed() -> None:
    assert (
        transliterate_to_gsm("C\u00f3mo est\u00e1s \u2014 ni\u00f1o \u00e9t\u00e9 \u7406")
        == "Como estas - ni\u00f1o \u00e9t\u00e9 \u7406"
    )
    assert sms_measure(transliterate_to_gsm("Cl\u00ednica \u201cabierta\u201d")).encoding == "GSM-7"


def test_without_repeats() -> None:
    assert without_repeats("Saturday hours\u2026", "Saturday hours start Dec 5.", None) == (
        "",
        "Saturday hours start Dec 5.",
    )
    url = "https://www.oakviewpt.com/blog/video"
    assert without_repeats(url, url + "/", url + "?utm_source=x") == ("", "")
    assert without_repeats("Knee pain", "Ice helps. See https://nih.example/knee", url) == (
        "Knee pain",
        "Ice helps. See https://nih.example/knee",
    )


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("We open at 8 a.m. on weekdays. Call us.", ["We open at 8 a.m. on weekdays.", "Call us."]),
        ("Open 8 a.m. to 5 p.m. Call us.", ["Open 8 a.m. to 5 p.m.", "Call us."]),
        ("Abrimos a las 8 a. m. de lunes a viernes. Llame.", ["Abrimos a las 8 a. m. de lunes a viernes.", "Llame."]),
        ("La Sra. Ruiz trae, p. ej. su lista. Bien.", ["La Sra. Ruiz trae, p. ej. su lista.", "Bien."]),
        ("See Dr. Lopez at St. Mary's, knee vs. hip. Fine.", ["See Dr. Lopez at St. Mary's, knee vs. hip.", "Fine."]),
        ("Walk approx. 20 minutes, e.g. after lunch. Rest.", ["Walk approx. 20 minutes, e.g. after lunch.", "Rest."]),
        ("Bring towels, mats, etc. and water. Done.", ["Bring towels, mats, etc. and water.", "Done."]),
        ("We close at 5 p.m. Call us.", ["We close at 5 p.m.", "Call us."]),
        ("Take vitamin D. It helps.", ["Take vitamin D.", "It helps."]),
    ],
)
def test_a_sentence_never_ends_on_an_abbreviation_its_sentence_goes_on_after(text: str, sentences: list[str]) -> None:
    assert [unit.strip() for unit in _units(text)] == sentences


def test_a_thread_part_never_ends_on_an_abbreviation_even_inside_a_long_sentence() -> None:
    text = "Our Saturday clinic opens at 8 a.m. and closes at 1 p.m. for walk-in knee and hip checks with Dr. Ruiz."
    parts = split_to_fit(text, lambda part: len(part) <= 36)
    assert " ".join(parts) == text
    assert not any(part.endswith(("a.m.", "p.m.", "Dr.")) for part in parts)


def test_flatten_joins_nested_list_items_to_their_item_and_puts_nothing_right_after_a_url() -> None:
    nested = "What to bring\n\n* Your card\n* A list of your medicines\n  * including vitamins\n  * and creams\n* Scans"
    assert flatten(nested) == (
        "What to bring: Your card. A list of your medicines, including vitamins, and creams. Scans"
    )
    assert flatten("* Warm-up\n  * Walk 5 minutes\n  * Leg swings\n* Main set") == (
        "Warm-up: Walk 5 minutes, Leg swings. Main set"
    )
    video = "A minute a day.\n\nhttps://www.youtube.com/watch?v=abcDEF12345\n\nKeep the heel down."
    assert flatten(video) == "A minute a day. https://www.youtube.com/watch?v=abcDEF12345 Keep the heel down."
    assert (
        flatten("Watch the video:\n\nhttps://youtu.be/abcDEF12345") == "Watch the video: https://youtu.be/abcDEF12345"
    )


def test_a_cut_that_ends_on_a_link_leaves_the_link_whole_with_a_space_before_the_ellipsis() -> None:
    cut = shorten("Read https://oakviewpt.com/knees for all our advice today", lambda part: len(part) <= 34)
    assert cut == "Read https://oakviewpt.com/knees \u2026"
