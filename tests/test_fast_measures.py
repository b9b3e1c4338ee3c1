"""The fast measures against the slow definitions they replace: X's (carecast.xweight) against twitter-text's own
parse_tweet on the whole conformance suite and a hypothesis property, both configurations, and its URLs read a word
at a time against twitter-text's extraction of the whole text; SMS segments against the character-at-a-time
count."""

from __future__ import annotations

from typing import Any, Literal

import pytest
import regex
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from twitter_text import parse_tweet
from twitter_text.extract_urls import extract_urls_with_indices
from twitter_text.regexp.emoji import emoji_list

from carecast.text import GSM_CODEC, SEGMENT_CAPACITY, graphemes, sms_measure
from carecast.xweight import _EMOJI_CODE_POINTS, CONFIGS, find_urls, weigh
from tests.test_text import CONFORMANCE


def _every_conformance_text() -> list[Any]:
    if not CONFORMANCE.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"conformance suite absent: {CONFORMANCE}"))]
    groups = yaml.safe_load(CONFORMANCE.read_text(encoding="utf-8"))["tests"]
    return [
        pytest.param(case["text"], id=f"{group}-{number}")
        for group, cases in groups.items()
        for number, case in enumerate(cases)
    ]


def _same(text: str) -> None:
    versions: tuple[Literal[2, 3], ...] = (2, 3)
    for version in versions:
        parsed = parse_tweet(text, CONFIGS[version])
        assert weigh(text, version) == (parsed.weightedLength, parsed.valid), (version, text)


@pytest.mark.parametrize("text", _every_conformance_text())
def test_every_conformance_text_weighs_as_parse_tweet(text: str) -> None:
    _same(text)


EMOJI = [entry.emoji for entry in emoji_list]
PIECES = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(max_codepoint=0x2100), max_size=30),
    st.sampled_from(
        [
            " https://www.oakviewpt.com/blog/knees?utm_source=twitter ",
            "example.com",
            " http://t.co/abc/def ",
            "日本.example.com/path",
            "#1",
            "1/3 ",
            "\r\n",
            "\r",
            "cafe\u0301",
            "\u2019\u2014\u2026\u2022",
            "\ufeff",
            "\u202a",
            "\u20e3",
            "1\ufe0f\u20e3",
            "#\u20e3",
        ]
    ),
    st.sampled_from(EMOJI),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join))
def test_any_text_weighs_as_parse_tweet(text: str) -> None:
    _same(text)


@pytest.mark.parametrize(
    "text",
    [
        "Desk stretches: sit tall, roll your shoulders back. https://www.oakviewpt.com/blog/x #pt",
        "Don\u2019t miss it \u2014 30% off\u2026 \u2022 caf\u00e9 \u00fcber na\u00efve \u7406\u5b66\u7642\u6cd5",
    ],
)
def test_a_text_without_emoji_takes_the_fast_path(text: str) -> None:
    # Nothing in it can start an emoji: weigh() answers without parse_tweet's emoji scan.
    assert _EMOJI_CODE_POINTS.search(text) is None
    _same(text)


def _segments_one_character_at_a_time(text: str) -> tuple[str, int, int]:
    # The definition sms_measure had: the gsm0338 codec on each character, else UTF-16 code units. The codec writes
    # ESC as the byte that opens an extension-table pair, so a phone reads no character of its own there: a text
    # holding one is no GSM-7 text (sms_measure's table, built by decoding, never holds it).
    try:
        if "\x1b" in text:
            raise UnicodeEncodeError(GSM_CODEC, text, text.index("\x1b"), text.index("\x1b") + 1, "a bare escape")
        encoding, costs = "GSM-7", [len(char.encode(GSM_CODEC)) for char in text]
    except UnicodeEncodeError:
        encoding, costs = "UCS-2", [len(char.encode("utf-16-le")) // 2 for char in text]
    single, multi = SEGMENT_CAPACITY[encoding]
    if sum(costs) <= single:
        return encoding, sum(costs), 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return encoding, sum(costs), segments


SMS_TEXT = st.lists(
    st.one_of(
        st.text(alphabet="ab \u20ac^{}[]~|\\\n", max_size=200),
        st.text(max_size=80),
        st.sampled_from(["\U0001f389", "\u00e1", "a" * 150]),
    ),
    max_size=6,
).map("".join)


@settings(max_examples=300, deadline=None)
@example("\x1b")  # the escape alone: no character of GSM-7 (found by hypothesis)
@given(SMS_TEXT | st.text(alphabet=st.characters(max_codepoint=0x3FF), max_size=400))
def test_sms_segments_as_counted_one_character_at_a_time(text: str) -> None:
    measure = sms_measure(text)
    assert (measure.encoding, measure.units, measure.segments) == _segments_one_character_at_a_time(text)


def _extracted(text: str, without_protocol: bool) -> list[tuple[int, int, str]]:
    entities = extract_urls_with_indices(text, without_protocol)
    return [(entity["indices"][0], entity["indices"][1], entity["url"]) for entity in entities]


URL_PIECES = st.one_of(
    PIECES,
    st.sampled_from([" ", "\n", "\t", ".", "/", "-", "_", "(", ")", "@", "#", "$", "\u00a0", "\u3000", "\u202a"]),
    st.sampled_from(["x.com", "t.co/abcdef", "https://", "http://a.b", ".co.uk", "www.", "日本.jp", "é.com", ":8080"]),
)


@pytest.mark.parametrize("text", _every_conformance_text())
def test_every_conformance_text_has_the_urls_twitter_text_extracts(text: str) -> None:
    for without_protocol in (True, False):
        assert find_urls(text, without_protocol) == _extracted(text, without_protocol)


@settings(max_examples=600, deadline=None)
@given(st.lists(URL_PIECES, max_size=16).map("".join))
@example("\x800.AL x \x800.AL")  # a text's first character may be the one before a URL
def test_any_text_has_the_urls_twitter_text_extracts(text: str) -> None:
    for without_protocol in (True, False):
        assert find_urls(text, without_protocol) == _extracted(text, without_protocol), without_protocol


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=60) | st.lists(PIECES, max_size=8).map("".join))
def test_graphemes_are_what_unicode_counts(text: str) -> None:
    assert graphemes(text) == len(regex.findall(r"\X", text))
