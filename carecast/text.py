"""Pure text measures and helpers shared by the channels: X weighted length, SMS segments, UTM tagging, shortening.

Nothing here knows a channel: each function takes text and returns text or a measure. The numbers follow the
providers' own rules (RULES.md): X through ``twitter-text-parser`` (the official weighting, NFC first), SMS through
the ``gsm0338`` codec for the GSM-7 charset, packed into segments the way Twilio bills them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import gsm0338  # noqa: F401  (registers the 'gsm03.38' codec)
import regex

from carecast.errors import MeasureError
from carecast.xweight import weigh

GSM_CODEC = "gsm03.38"
#: A hashtag as Instagram and LinkedIn see one: ``#`` and a word with at least one letter (``#1`` is none).
HASHTAG = re.compile(r"(?<![\w#])#(\w*[^\W\d_]\w*)")

#: Characters per segment, as Twilio bills them: (single-segment message, each part of a multi-part message).
SEGMENT_CAPACITY: dict[str, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}

#: Typographic punctuation with a GSM-7 equivalent; one of these alone makes a whole text UCS-2 (twice the cost).
GSM_EQUIVALENTS = str.maketrans(
    {
        "\u2018": "'",  # left single quotation mark
        "\u2019": "'",  # right single quotation mark, apostrophe
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",  # en dash
        "\u2014": "-",  # em dash
        "\u2015": "-",
        "\u2212": "-",
        "\u2022": "-",  # bullet
        "\u2026": "...",
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
    }
)

_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u2019\u201d)]*$")
_LIST_MARKER = re.compile(r"^(\d{1,2}[.)]|[*\u2022])$")  # a spaced dash is prose, not a list
_BULLET = re.compile(r"^[*\u2022]\s+")
#: Words that end in a full stop without ending a sentence (English and Spanish): a thread part never ends on them.
_ABBREVIATION = re.compile(
    r"^\(?(?:dr|mr|mrs|ms|st|sr|sra|srta|dra|jr|vs|approx|nos|vol|fig|figs|pp|cf|dept|avda|ud|uds|e\.g|i\.e|p\.ej)\.$",
    re.IGNORECASE,
)
#: Words shortened with a full stop that may also end a sentence ("open until 5 p.m."): an initialism ("a.m.",
#: "U.S."), a single letter (Spanish "a. m.", "p. ej.", an initial) or a common shortening. One ends a sentence only
#: when what follows starts as a sentence does, not in lower case or with a digit ("8 a.m. on weekdays").
_SHORTENED = re.compile(
    r"^\(?(?:(?:[^\W\d_]\.)+|(?:etc|ej|aprox|approx|min|mins|hr|hrs|sec|tel|ext|no|núm|pág|inc|ltd|co|lbs|oz|ft)\.)$",
    re.IGNORECASE,
)
_LINK_OR_TAG = re.compile(r"^(https?://\S+|#\w+)$")
#: Emoji as Unicode defines them, with what binds them into one picture (ZWJ, VS16, skin tones, keycaps, flags).
_EMOJI = regex.compile(
    r"[\p{Extended_Pictographic}\p{Emoji_Modifier}\p{Regional_Indicator}\u200d\ufe0f\u20e3]+"
    r"|[0-9#*]\ufe0f?\u20e3"
)
_DOUBLE_SPACE = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" ([.,;:!?])")


@dataclass(frozen=True)
class XMeasure:
    """A text's weighted length as X counts it, and whether X accepts it (1..280 weighted, no invalid chars)."""

    weighted_length: int
    valid: bool


@dataclass(frozen=True)
class SmsMeasure:
    """How an SMS is encoded and billed: ``units`` are GSM-7 septets or UTF-16 code units."""

    encoding: Literal["GSM-7", "UCS-2"]
    units: int
    segments: int


def x_measure(text: str, version: Literal[2, 3] = 3) -> XMeasure:
    """Weigh ``text`` as X does: twitter-text config v3 (what X uses today) unless ``version`` says otherwise.

    Version 2 differs only in counting each emoji code point instead of each emoji sequence; the official
    conformance suite's ``WeightedTweetsCounterTest`` is written for it. twitter-text-parser normalises to NFC
    and folds a CRLF to one character. A text without emoji is weighed without twitter-text's emoji scan
    (:func:`carecast.xweight.weigh`, equal to ``parse_tweet``); the last 1,024 texts measured are remembered, so
    ``Channel.enforce`` re-measuring a part the channel measured while composing it costs nothing. Raises nothing.
    """
    return _x_measure(text, version)


@functools.lru_cache(maxsize=1024)
def _x_measure(text: str, version: Literal[2, 3]) -> XMeasure:
    weighted_length, valid = weigh(text, version)
    return XMeasure(weighted_length=weighted_length, valid=valid)


_GRAPHEME = regex.compile(r"\X")


def graphemes(text: str) -> int:
    """How many grapheme clusters (``\\X``) ``text`` holds: an ASCII text's are its characters, save that CR LF
    is one (Unicode's rules: no ASCII character extends or joins another). Raises nothing."""
    return len(text) - text.count("\r\n") if text.isascii() else len(_GRAPHEME.findall(text))


def _gsm_costs() -> dict[str, int]:
    """Every character the GSM 03.38 codec encodes, with its cost in septets (2: the extension table's escape
    pair): what the codec decodes from each byte and escaped byte, weighed by encoding it back."""
    costs = {}
    for code in (*([byte] for byte in range(128)), *([0x1B, byte] for byte in range(128))):
        with suppress(UnicodeDecodeError, KeyError):
            char = bytes(code).decode(GSM_CODEC)
            if len(char) == 1:
                with suppress(UnicodeEncodeError, KeyError, TypeError):
                    costs[char] = len(char.encode(GSM_CODEC))
    return costs


#: gsm0338 encodes one character at a time in Python: a table lookup per character is ~30 times faster.
_GSM_COSTS = _gsm_costs()


def _unit_costs(text: str) -> tuple[Literal["GSM-7", "UCS-2"], list[int]]:
    # Each character's cost in the message's encoding: 1 or 2 septets (extension table), 1 or 2 UTF-16 units.
    try:
        return "GSM-7", [_GSM_COSTS[char] for char in text]
    except KeyError:
        return "UCS-2", [2 if ord(char) > 0xFFFF else 1 for char in text]


def sms_measure(text: str) -> SmsMeasure:
    """Encoding, units and segments of ``text`` exactly as Twilio bills it (RULES.md "SMS").

    A character outside GSM-7 makes the whole text UCS-2. A text longer than one segment is split into parts of
    153 septets or 67 code units, and an escape pair or a surrogate pair never straddles two parts, which can add
    a segment. An empty text counts one segment, as Twilio's calculator does: a message is billed at least once.
    Raises nothing.
    """
    encoding, costs = _unit_costs(text)
    single, multi = SEGMENT_CAPACITY[encoding]
    units = sum(costs)
    if units <= single:
        return SmsMeasure(encoding, units, 1)
    if units == len(text):  # every character is one unit: no pair can straddle two parts
        return SmsMeasure(encoding, units, -(-units // multi))
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return SmsMeasure(encoding, units, segments)


def to_gsm(text: str) -> str:
    """Replace typographic quotes, dashes, bullets and the ellipsis with their GSM-7 look-alikes.

    For SMS text only: one curly apostrophe turns a whole message UCS-2 and roughly halves what a segment holds.
    Raises nothing.
    """
    return text.translate(GSM_EQUIVALENTS)


def _bare_host(host: str) -> str:
    return host.lower().removeprefix("www.")


def add_utm(url: str, source: str, medium: str, campaign: str, own_host: str) -> str:
    """Tag ``url`` with lowercase ``utm_source``/``utm_medium``/``utm_campaign`` when it points at ``own_host``.

    Hosts compare case-insensitively and with or without ``www.``. Other sites' links come back unchanged. UTM
    values the link already has (a blog platform's ``utm_source=hubspot``) are replaced, never doubled: a click
    is credited to the channel it came from. Its other parameters (byte for byte) and its fragment are kept.
    Raises nothing.
    """
    parts = urlsplit(url)
    if not parts.hostname or not own_host or _bare_host(parts.hostname) != _bare_host(own_host):
        return url
    wanted = {"utm_source": source, "utm_medium": medium, "utm_campaign": campaign}
    others = [pair for pair in parts.query.split("&") if pair and pair.split("=", 1)[0].lower() not in wanted]
    query = "&".join([*others, urlencode([(key, value.lower()) for key, value in wanted.items()])])
    return urlunsplit(parts._replace(query=query))


def shorten(text: str, fits: Callable[[str], bool], ellipsis: str = "\u2026") -> str:
    """The longest cut of ``text`` on a word boundary, ending in ``ellipsis``, that ``fits``; ``text`` if it fits.

    ``fits`` judges the candidate in place (e.g. the whole post around it), so every measure works the same way.
    Raises MeasureError when not even the first word with the ellipsis fits.
    """
    if fits(text):
        return text
    words = text.split()
    # fits is monotone in the number of words kept, so search for the last count that fits.
    low, high = 0, len(words) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(_cut(words, middle, ellipsis)):
            low = middle
        else:
            high = middle - 1
    if low == 0:
        raise MeasureError(f"not even the first word of {text[:40]!r} fits")
    return _cut(words, low, ellipsis)


def _cut(words: list[str], count: int, ellipsis: str) -> str:
    if words[count - 1].startswith(("http://", "https://")):  # an ellipsis glued to a link breaks it
        return " ".join(words[:count]) + " " + ellipsis
    return " ".join(words[:count]).rstrip(".,;:!?-\u2013\u2014") + ellipsis


def shorten_middle(text: str, fits: Callable[[str], bool], ellipsis: str = "\u2026") -> str:
    """``text`` cut in its middle so that it ``fits``: its opening words, ``ellipsis``, then its last sentence whole.

    The last sentence of a post is where its call to action usually is ("Call 312-555-0142 to book."), so it is
    kept; without a last sentence to keep (one sentence only, or it alone does not fit) this is :func:`shorten`.
    Raises MeasureError as :func:`shorten` does.
    """
    if fits(text):
        return text
    sentences = split_sentences(text)
    if len(sentences) >= 2:
        tail = sentences[-1].strip()
        head = "".join(sentences[:-1])
        with suppress(MeasureError):
            cut = shorten(head, lambda candidate: fits(f"{candidate} {tail}"), ellipsis)
            return f"{cut} {tail}"
    return shorten(text, fits, ellipsis)


def opening_sentences(text: str, fits: Callable[[str], bool]) -> str:
    """The longest run of ``text``'s opening sentences, whole, that ``fits`` (judged in place, as :func:`shorten`
    does); "" when not even the first one does. A teaser: it ends where the author ended a sentence."""
    sentences = _units(text)
    low, high = 0, len(sentences)
    while low < high:  # fits is monotone in the number of sentences kept
        middle = (low + high + 1) // 2
        if fits("".join(sentences[:middle]).strip()):
            low = middle
        else:
            high = middle - 1
    return "".join(sentences[:low]).strip()


def numbered_thread(text: str, fits: Callable[[str], bool], most: int) -> list[str]:
    """``text`` as the shortest thread of posts numbered ``1/3 ...`` that each ``fits``.

    Raises MeasureError when it needs more than ``most`` posts or a word is longer than a post.
    """
    parts: list[str] = []
    for total in range(2, most + 1):
        # Reserve room for the widest number this thread length can show.
        def numbered_fits(part: str, marker: str = f"{total}/{total} ") -> bool:
            return fits(marker + part)

        # Digits and "/" weigh one each in every channel's measure, so markers of one length split alike: split
        # again only when the marker grows (10/10).
        if not parts or len(str(total)) != len(str(total - 1)):
            parts = split_to_fit(text, numbered_fits)
        if len(parts) <= total:
            return [f"{number}/{len(parts)} {part}" for number, part in enumerate(parts, start=1)]
    raise MeasureError(f"needs more than {most} posts (max_thread_parts)")


def split_to_fit(
    text: str, fits: Callable[[str], bool], *, first_fits: Callable[[str], bool] | None = None
) -> list[str]:
    """Split ``text`` into parts that each ``fits``: whole sentences and list items where possible, else words.

    ``first_fits`` judges the first part instead of ``fits`` (it goes beside a title and a link); when not even the
    first sentence's first word fits there, the first part is empty. A list item's number stays with its item, and
    a sentence that is only links or hashtags stays with the sentence before it, so no part is only a number, a
    link or hashtags. Line breaks inside a part are kept; a URL is one word, so it is never cut.

    Both judges must be monotone (a part that fits still fits with its last piece taken off): each part is found by
    a galloping search over how many pieces it takes, starting from the size of the part before, so a text costs a
    few measures per part, and no candidate is measured twice. Raises MeasureError when a single word does not fit
    on its own.
    """
    measure = functools.lru_cache(maxsize=None)(fits)
    first = measure if first_fits is None else functools.lru_cache(maxsize=None)(first_fits)
    # Whole units; one is split into its words only once it shows it cannot fit on its own.
    pieces = _units(text)

    def split_if_too_long(index: int) -> bool:
        words = _words(pieces[index])
        if len(words) == 1 or measure(pieces[index].strip()):
            return False
        pieces[index : index + 1] = words
        return True

    parts: list[str] = []
    start, size = 0, 1
    while start < len(pieces):
        judge = measure if parts else first

        def fits_together(end: int, start: int = start, judge: Callable[[str], bool] = judge) -> bool:
            return judge("".join(pieces[start:end]).strip())

        # Gallop from the size of the part before (parts run alike): up while pieces fit, else bisect below it.
        end = min(start + size, len(pieces))
        if fits_together(end):
            good, step = end, 1
            while good + step <= len(pieces) and fits_together(good + step):
                good, step = good + step, step * 2
            bad = min(good + step, len(pieces) + 1)
        elif end == start + 1 or not fits_together(start + 1):
            if split_if_too_long(start):
                continue
            if not parts and measure(pieces[start].strip()):
                parts.append("")  # not even its first word fits beside the title and the link
                continue
            raise MeasureError(f"the word {pieces[start].strip()[:40]!r} does not fit on its own")
        else:
            good, bad = start + 1, end
        while bad - good > 1:
            middle = (good + bad) // 2
            good, bad = (middle, bad) if fits_together(middle) else (good, middle)
        if good < len(pieces) and split_if_too_long(good):
            continue  # the unit after this part is too long for any part: its first words may join this one
        parts.append("".join(pieces[start:good]).strip())
        start, size = good, good - start
    return parts or [""]


def _units(text: str) -> list[str]:
    """The sentences of ``text``, each link-or-hashtag-only sentence joined to the one before it, and a sentence
    ending in a colon (a list's heading) to the one after it."""
    return list(_units_of(text))


@functools.lru_cache(maxsize=1024)  # each channel of a run cuts the same items' text into the same sentences
def _units_of(text: str) -> tuple[str, ...]:
    units: list[str] = []
    for sentence in split_sentences(text):
        if units and (all(_LINK_OR_TAG.match(word) for word in sentence.split()) or units[-1].rstrip().endswith(":")):
            units[-1] += sentence
        else:
            units.append(sentence)
    return tuple(units)


def split_sentences(text: str) -> list[str]:
    """``text``'s sentences in order, each with the whitespace after it (joined, they are ``text``). Raises nothing."""
    # A sentence ends after terminal punctuation (closing quotes too) or at a line break; whitespace stays with it.
    # A list marker ("1.", "2)", "*", "•") starts a sentence and never ends one: the item keeps its number.
    # "Dr." or "e.g." ends none either, nor "a.m." before the rest of its sentence.
    sentences = [""]
    tokens = re.findall(r"\S+\s*", text)
    for index, token in enumerate(tokens):
        if len(sentences) > 1 and not sentences[-1] and not drop_emoji(token):
            sentences[-2] += token  # "add up. 💪": the emoji closes the sentence before it
            continue
        # A number is a list marker only where an item can start (after a sentence, a colon or a line break):
        # "on January 1." and "number 3." are prose, and a part never ends on the month or the noun before them.
        opening = not sentences[-1].strip() or sentences[-1].rstrip().endswith(":") or not token[0].isdigit()
        if _LIST_MARKER.match(token.strip()) and opening:
            if sentences[-1].strip():
                sentences.append("")
            sentences[-1] += token
            continue
        sentences[-1] += token
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        if "\n" in token or (_SENTENCE_END.search(token.rstrip()) and not _shortened(token, following)):
            sentences.append("")
    return [sentence for sentence in sentences if sentence]


def _shortened(word: str, following: str) -> bool:
    """Whether ``word``'s full stop shortens it rather than ending its sentence, given the word after it."""
    word = word.strip()
    if _ABBREVIATION.match(word):
        return True
    start = following.lstrip("(\"'\u201c\u2018\u00ab")[:1]
    return bool(_SHORTENED.match(word)) and (start.islower() or start.isdigit())


def _words(sentence: str) -> list[str]:
    """``sentence``'s words, each abbreviation with the word after it ("Dr. Ruiz", "a.m. on") and a number with the
    shortening after it ("8 a.m."): a part cut inside a sentence never ends on one."""
    words: list[str] = []
    for word in re.findall(r"\S+\s*", sentence):
        last = words[-1].split()[-1] if words else ""
        if words and (_shortened(last, word) or (last.isdigit() and _SHORTENED.match(word.strip()))):
            words[-1] += word
        else:
            words.append(word)
    return words


@functools.lru_cache(maxsize=1024)  # each channel of a run posts the same items: their text is flattened once
def flatten(text: str) -> str:
    """``text`` (paragraphs, headings, list items on their own lines) on one line for a post or a text.

    A line that does not end a sentence (a heading, a list item without a full stop) ends with a colon before a
    list and a full stop otherwise, so it neither runs into the next sentence nor ends a post on its own. A nested
    list's items (indented) join their item: after a comma when they go on in lower case ("medicines, including
    vitamins"), else a colon, one another after a comma. Numbered items keep their numbers; bullets (``*``) are
    dropped. Nothing is put right after a link: a full stop there breaks it on some networks. Raises nothing.
    """
    lines = [
        (" ".join(line.split()), _BULLET.match(line.strip()), len(line) - len(line.lstrip()))
        for line in text.splitlines()
        if line.strip()
    ]
    out = []
    for number, (line, bullet, depth) in enumerate(lines):
        words = line.split()
        if bullet:
            line = line[bullet.end() :]
        ends = drop_emoji(line)  # "…add up. 💪" ends a sentence
        if number + 1 < len(lines) and not _SENTENCE_END.search(ends) and not ends.endswith(":"):
            following, following_bullet, following_depth = lines[number + 1]
            item = bool(bullet or _LIST_MARKER.match(words[0]))
            starts_list = bool(following_bullet or _LIST_MARKER.match(following.split()[0]))
            if item and starts_list and following_depth > depth:
                line += "," if following[following_bullet.end() if following_bullet else 0 :][:1].islower() else ":"
            elif item and starts_list and following_depth == depth > 0:
                line += ","
            elif not words[-1].startswith(("http://", "https://")):
                line += ":" if starts_list and not item else "."
        out.append(line)
    return " ".join(out)


def drop_emoji(text: str) -> str:
    """``text`` without emoji (sequences whole: skin tones, ZWJ families, flags, keycaps), spaces tidied.

    Raises nothing.
    """
    cleaned = _EMOJI.sub("", text)
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _DOUBLE_SPACE.sub(" ", cleaned)).strip() if cleaned != text else text


def transliterate_to_gsm(text: str) -> str:
    """Characters outside GSM-7 replaced by their look-alike or their letter without its accent (``á`` → ``a``,
    ``ç`` → ``c``) where that is GSM-7; others (``理``) stay. Raises nothing."""
    out = []
    for char in to_gsm(text):
        try:
            char.encode(GSM_CODEC)
        except UnicodeEncodeError:
            bare = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            try:
                bare.encode(GSM_CODEC)
                char = bare
            except UnicodeEncodeError:
                pass
        out.append(char)
    return "".join(out)


@functools.lru_cache(maxsize=1024)  # each channel of a run posts the same items: their copy is made once
def without_repeats(title: str, body: str, url: str | None) -> tuple[str, str]:
    """``title`` and ``body`` of a post with nothing said twice: the title dropped when the body opens with it
    (an untitled item's title is its text's start) or it is only the link, and the link dropped from the body
    (the post carries it once, where its template puts it). Raises nothing."""
    if url:
        own = _bare_url(url)
        body = " ".join(word for word in body.split(" ") if not word or _bare_url(word) != own).strip()
        if _bare_url(title) == own:
            title = ""
    stem = title.rstrip("\u2026.").strip()
    if stem and " ".join(body.split()).casefold().startswith(" ".join(stem.split()).casefold()):
        title = ""
    return title, body


def _bare_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in {"http", "https"}:
        return text.strip()
    query = "&".join(pair for pair in parts.query.split("&") if pair and not pair.lower().startswith("utm_"))
    return urlunsplit(("", parts.netloc.lower().removeprefix("www."), parts.path.rstrip("/"), query, ""))
