"""X's weighted length without twitter-text's emoji scan, for texts that hold no emoji.

``twitter_text.parse_tweet`` (twitter-text-parser 3.0.0) runs its emoji regex over every text whatever
``emoji_parsing_enabled`` says, then weighs the text one character at a time in Python: ~1 ms for a 280-character
post, 80% of it the emoji scan. This module weighs a text with twitter-text's own configuration (its ``ranges``,
``default_weight``, ``scale`` and ``transformed_url_length``), its own URL extraction, NFC normalisation and line
ending folding, and its own per-character weight function, in the order ``parse_tweet`` applies them; the one step
it leaves out is the emoji scan, so it answers only when that scan cannot change the result:

- config v3 (emoji parsing on): the text holds none of the non-ASCII code points of twitter-text's emoji list
  (every emoji, keycaps included, has one: checked when the module loads), so the scan would find nothing;
- config v2 (emoji parsing off): the scan's matches are ignored anyway.

Any other text (an emoji, or one of twitter-text's invalid characters) goes to ``parse_tweet`` itself. Equality
with ``parse_tweet`` is tested on the whole conformance suite and on a hypothesis property (tests/test_xweight.py).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any, Literal

from twitter_text import parse_tweet
from twitter_text.config import config as twitter_config
from twitter_text.extract_urls import extract_urls_with_indices
from twitter_text.get_character_weight import get_character_weight
from twitter_text.parse_tweet import convert_line_ending
from twitter_text.regexp.emoji import emoji_list, single_codepoint_emoji_ranges
from twitter_text.regexp.invalid_chars import invalid_chars

#: twitter-text configurations; the parser needs the emoji flag spelled out, which its v2 entry omits.
CONFIGS: dict[int, dict[str, Any]] = {
    2: {**twitter_config["version2"], "emoji_parsing_enabled": False},
    3: twitter_config["version3"],
}


def _emoji_code_points() -> re.Pattern[str]:
    """A character class of every code point that can make twitter-text's emoji regex match.

    The regex is the multi-code-point sequences of ``emoji_list`` or a class of ``single_codepoint_emoji_ranges``:
    a text without any of the single ones and without at least one code point of each sequence has no match.
    Each sequence is represented by its non-ASCII code points (ASCII digits, ``#`` and ``*`` start keycaps, which
    also hold U+20E3); a sequence without one would make ASCII text an emoji, which the assertion rules out.
    """
    points: set[int] = set()
    for low, high in single_codepoint_emoji_ranges:
        points.update(range(low, high + 1))
    for entry in emoji_list:
        codes = [int(code, 16) for code in entry.codepoint.split()]
        wide = [code for code in codes if code > 127]
        assert wide, f"twitter-text emoji {entry.codepoint} is all ASCII"  # the fast path would be wrong
        points.update(wide)
    ranges, ordered = [], sorted(points)
    start = previous = ordered[0]
    for code in [*ordered[1:], None]:
        if code is not None and code == previous + 1:
            previous = code
            continue
        ranges.append(re.escape(chr(start)) + (f"-{re.escape(chr(previous))}" if previous != start else ""))
        if code is not None:
            start = previous = code
    return re.compile(f"[{''.join(ranges)}]")


_EMOJI_CODE_POINTS = _emoji_code_points()
# weigh() looks for either among a text's non-ASCII characters only.
assert not any(pattern.search(chr(code)) for code in range(128) for pattern in (_EMOJI_CODE_POINTS, invalid_chars))
assert invalid_chars.pattern.startswith("[") and invalid_chars.pattern.endswith("]")  # one character


#: Where a text is cut for :func:`find_urls`: ASCII white space, which twitter-text's URL pattern never holds (its
#: domain characters exclude ``spaces_group``, its path, query and port characters are listed without it).
_WORD = re.compile(r"[^ \t\n\r\f\v]+")


def find_urls(text: str, without_protocol: bool = True) -> list[tuple[int, int, str]]:
    """``extract_urls_with_indices(text, without_protocol)`` as (start, end, url), read a word at a time, each
    word's URLs kept by the word: a post's candidates share most of their words. Raises nothing.

    Exact: no URL holds white space, so each lies in one word. The pattern is tried at every position, reading the
    character there as the one before a URL (any but a letter, digit, ``@``, ``$`` or ``#``) or, at the start of
    the text only, nothing; after a URL's domain it checks one character (not alphanumeric, ``@``, ``+`` or ``-``,
    or the end). So a word is read as the text reads it: behind a space (where the text has white space, tried
    first, as the text tries it there) unless it starts the text, and a word's end passes the check as the white
    space after it does. The one use twitter-text makes of the character before (``[-_./]$``) finds no white space.
    """
    needed = "." if without_protocol else ":"  # twitter-text's own shortcut: no URL without either
    found = []
    for word in _WORD.finditer(text):
        if needed in word.group():
            at, behind = word.start(), word.start() > 0
            found += [
                (start + at, end + at, url) for start, end, url in _word_urls(word.group(), without_protocol, behind)
            ]
    return found


@functools.lru_cache(maxsize=16384)
def _word_urls(word: str, without_protocol: bool, behind_space: bool) -> tuple[tuple[int, int, str], ...]:
    shift = 1 if behind_space else 0
    return tuple(
        (entity["indices"][0] - shift, entity["indices"][1] - shift, entity["url"])
        for entity in extract_urls_with_indices(" " * shift + word, without_protocol)
    )


@functools.lru_cache(maxsize=4096)
def _weight(char: str, version: int) -> int:
    return int(get_character_weight(char, CONFIGS[version]))


def weigh(text: str, version: Literal[2, 3] = 3) -> tuple[int, bool]:
    """``text``'s weighted length and validity exactly as ``parse_tweet(text, CONFIGS[version])`` gives them.

    Raises nothing.
    """
    options = CONFIGS[version]
    normalized = convert_line_ending(unicodedata.normalize("NFC", text))
    # Both are classes of single non-ASCII characters: looked for among the text's distinct non-ASCII ones only.
    wide = "" if normalized.isascii() else "".join({char for char in normalized if not char.isascii()})
    if invalid_chars.search(wide) or (options["emoji_parsing_enabled"] and _EMOJI_CODE_POINTS.search(wide)):
        parsed = parse_tweet(text, options)
        return parsed.weightedLength, parsed.valid
    scale = options["scale"]
    weighted = 0
    # parse_tweet keys URLs by where they start (a later one at the same start wins) and, on reaching one, adds the
    # transformed length and skips len(url) characters: a URL starting inside that skip is never reached.
    starts = {start: url for start, _, url in find_urls(normalized)}
    pieces, position = [], 0
    for start in sorted(starts):
        if start < position:
            continue
        pieces.append(normalized[position:start])
        weighted += options["transformed_url_length"] * scale
        position = start + len(starts[start])
    pieces.append(normalized[position:])
    rest = "".join(pieces)
    weighted += sum(_weight(char, version) * rest.count(char) for char in set(rest))
    length = int(weighted / scale)
    return length, 0 < length <= options["max_weighted_tweet_length"]
