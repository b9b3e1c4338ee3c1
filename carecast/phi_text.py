"""What the PHI check looks for in text: people, health context and identifying details (:mod:`carecast.phi`).

- **People**: the known patients; runs of capitalised words holding a first name of the US census lists (``names``)
  or of the worldwide first-name dictionary ``gender-guesser`` ships (about 38,000 names of 55 countries), or a
  census surname; two or three capitalised words no list knows (Nnamdi Eze); any capitalised words after a cue
  ("our patient", "felicitamos a"); initials ("Carla M.", "T.K."), handles ("@runs_with_rae") and signed
  testimonials ("— Greg T."). Not people: the practice's staff and partners (config), names written as staff's
  (credentials, roles), places and businesses (a run holding or followed by a place word: Hospital, Park, Ave,
  Co.), eponyms ("Bell's palsy", "McKenzie method"), public figures (a news cue in the sentence) and hypothetical
  personas ("let's call her Desk-Job Dana").
- **Health context**: conditions, procedures, body parts, mobility aids, recovery phrases and the words of being a
  patient at all, English and Spanish (``phi_terms.yaml``).
- **Identifying details without a name**: an age over 89, a street address, a unique role at a named place
  (45 CFR 164.514(b)(2)).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import regex
import yaml

TERMS_FILE = Path(__file__).with_name("phi_terms.yaml")
_APOSTROPHES = "'\u2019"
#: A capitalised word (any script), with inner hyphens and apostrophes: "O'Neil", "Adebayo-Okoro", "Nguyễn".
_WORD = rf"\p{{Lu}}[\p{{L}}\p{{M}}{_APOSTROPHES}]*(?:-\p{{L}}[\p{{L}}\p{{M}}]*)*"
_RUN = regex.compile(
    rf"(?<![\p{{L}}\p{{N}}@.])(?:{_WORD}|\p{{Lu}}\.)(?:\s(?:(?:de|del|da|van|von|ní|ni|bin|la|le)\s)?"
    rf"(?:{_WORD}|\p{{Lu}}\.(?:\p{{Lu}}\.)?))*"
)
_INITIALS = regex.compile(r"(?<![\p{L}])\p{Lu}\.\s?\p{Lu}\.(?![\p{L}])")
_HONORIFIC = regex.compile(r"(?<![\p{L}])(?:Mr|Mrs|Ms|Mx|Miss|Sr|Sra|Srta|Don|Doña)\.?\s(\p{Lu}[\p{L}'-]+)")
_HANDLE = regex.compile(r"(?<![\w@.])@[A-Za-z0-9_]{3,30}\b(?!\.\w)")
_SIGNED = regex.compile(r"[\"\u201d\u00bb]\s*[\u2014\u2013-]\s*(\p{Lu}[\p{L}]+(?:\s\p{Lu}[\p{L}]*\.?)?)")
_SENTENCE = regex.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_AGE = regex.compile(
    r"\b(?:9\d|1[01]\d)(?:[- ]years?[- ]old|\s+años|\s+year-old)\b|\b(?:aged?|turned|turns|is|he's|she's|edad de)\s+"
    r"(?:9\d|1[01]\d)\b|,\s*(?:9\d|1[01]\d),",
    regex.IGNORECASE,
)
_ADDRESS = regex.compile(
    r"\b\d{2,5}\s+(?:[NSEW]\.?\s+)?\p{Lu}[\p{L}]+(?:\s\p{Lu}[\p{L}]+)?"
    r"(?:\s+(?:St|Street|Ave|Avenue|Rd|Road|Blvd|Dr|Drive|Ln|Lane|Ct|Court|Way|Pl|Place)\b\.?)?"
)


_POSSESSIVE = regex.compile(rf"[{_APOSTROPHES}]s?$")
_WORDS = regex.compile(r"[\p{L}.]+")
_DOCTOR_BEFORE = regex.compile(r"\b(?:Dr|Doctor)\.?\s*$")
_BUSINESS_POSSESSIVE = regex.compile(r"\s*(?:[^\p{L}\s]|(?:for|and|or|at|on|in|to|is|has)\b)")
_FOLLOWING = regex.compile(r"\s+(\p{Lu}[\p{L}.]*)")
_STREET = regex.compile(r"\s[NSEW]\.?\s|\b(?:St|Street|Ave|Avenue|Rd|Road|Blvd|Dr|Drive|Ln|Lane)\b")
_SENTENCE_BREAK = regex.compile(r"[.!?]\s+(?=\p{Lu})|\n")
_LINE = regex.compile(r"[^\n]+")
_LONG_WORD = regex.compile(r"\p{L}{4,}")


@dataclass(frozen=True)
class Span:
    """A piece of text found: where it starts and ends, and what it says."""

    start: int
    end: int
    text: str

    @classmethod
    def of(cls, match: regex.Match[str], group: int = 0) -> Span:
        return cls(match.start(group), match.end(group), match.group(group))


@functools.cache
def terms() -> dict[str, Any]:
    """The word lists of ``phi_terms.yaml``."""
    # libyaml's loader: the pure-Python one takes a tenth of a second over this file, in every process that checks.
    loaded: dict[str, Any] = yaml.load(TERMS_FILE.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    return loaded


@functools.lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """``word`` upper case without accents or a possessive: "Nguyễn's" -> "NGUYEN"."""
    word = _POSSESSIVE.sub("", word).rstrip(".")
    return word.upper() if word.isascii() else _fold_accents(word)


def _fold_accents(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)).upper()


@functools.cache
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """First names (US census and gender-guesser's worldwide dictionary) and census surnames, folded."""
    census = resources.files("names")

    def read(file: str) -> set[str]:
        return {line.split()[0] for line in census.joinpath(file).read_text().splitlines() if line.strip()}

    first = read("dist.male.first") | read("dist.female.first")
    world = resources.files("gender_guesser").joinpath("data", "nam_dict.txt").read_text(encoding="iso8859-1")
    # Columns 4-29 hold the name ("+" joins the parts of a compound name); the rest, its frequency by country.
    names = {line[3:29].strip() for line in world.splitlines() if line[:1] in "MF?" and len(line) > 30}
    parts = {part for name in names for part in name.replace("+", "-").split("-") if len(part) > 1}
    first.update(part.upper() if part.isascii() else _fold_accents(part) for part in parts)
    return frozenset(first), frozenset(read("dist.all.last"))


@functools.cache
def matchers() -> dict[str, regex.Pattern[str]]:
    """Whole-word matchers of each word list."""
    listed = terms()
    return {key: alternation(listed[key]) for key in ("health", "context", "news", "persona", "contact_cues")} | {
        "role_id": regex.compile(
            r"(?i:\b(?:the|our|a)\s+(?:[\p{L}-]+\s+){0,2}(?:"
            + "|".join(_phrase(role) for role in listed["role_id"])
            + r"))(?![\p{L}])"
        ),
        "cue": regex.compile(
            r"(?:" + "|".join(_phrase(cue) for cue in listed["name_cues"]) + r")[,:!]?\s+$", regex.IGNORECASE
        ),
        "staff_after": regex.compile(
            r"^(?:,?\s*(?:" + "|".join(regex.escape(c) for c in listed["staff_credentials"]) + r")(?![\p{L}])"
            r"|,?\s+(?:is\s+)?(?:our|a|an|the)\s+(?:[\p{L}'\u2019-]+\s+){0,2}(?:"
            + "|".join(regex.escape(r) for r in listed["staff_roles"])
            + r")\b)",
            regex.IGNORECASE,
        ),
        # "physical therapist Marcus Bell", not "her teammate Bree": a person's own role word is no staff's.
        "staff_before": regex.compile(
            r"(?<!\b(?:his|her|their|my|your)\s+(?:[\p{L}-]+\s+)?)(?:"
            + "|".join(regex.escape(r) for r in listed["staff_roles"])
            + r"),?\s*$",
            regex.IGNORECASE,
        ),
        "eponym_after": regex.compile(
            rf"^(?:[{_APOSTROPHES}]s)?\s+(?:" + "|".join(_phrase(w) for w in listed["eponym_words"]) + r")\b",
            regex.IGNORECASE,
        ),
        "eponym_before": regex.compile(
            r"(?:" + "|".join(_phrase(w) for w in listed["eponym_before"]) + r")\s+$", regex.IGNORECASE
        ),
    }


@functools.lru_cache(maxsize=4096)
def health_terms(text: str) -> dict[str, tuple[tuple[int, int, str], ...]]:
    """Where ``text`` names a term of the ``health`` and of the ``context`` list: (start, end, term) each. Kept
    for the last 4,096 texts: an item's text is checked with every draft of every channel made from it.

    Read a clause at a time (:data:`_CLAUSE_END`), each clause's terms kept by its text: a draft is mostly its
    item's sentences, read once per run. Exact: a term holds only letters, spaces and hyphens (as does any match of
    it, whatever the case), so no match spans a clause's end, and the one character the matcher looks at beyond a
    match is a clause's own last character or, before its first, punctuation or a space, which is no letter or
    digit, as the start of a text is not."""
    found: dict[str, list[tuple[int, int, str]]] = {"health": [], "context": []}
    start = 0
    for end in [match.end() for match in _CLAUSE_END.finditer(text)] + [len(text)]:
        if end > start:
            for key, terms in _clause_terms(text[start:end]).items():
                found[key] += [(first + start, last + start, term) for first, last, term in terms]
        start = end
    return {key: tuple(terms) for key, terms in found.items()}


#: Where a clause ends: punctuation no term holds, and the spaces after it.
_CLAUSE_END = regex.compile(r"[.!?,;:()\n]\s*")


@functools.lru_cache(maxsize=16384)
def _clause_terms(clause: str) -> dict[str, tuple[tuple[int, int, str], ...]]:
    found = matchers()
    return {
        key: tuple((m.start(), m.end(), m.group()) for m in found[key].finditer(clause))
        for key in ("health", "context")
    }


@functools.cache
def _folded_terms() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    """The word lists a :class:`Reader` looks words up in, folded (:func:`fold`) once per process: not names,
    place words, ambiguous first names and the one-word health and context terms."""
    listed = terms()
    return (
        frozenset(fold(word) for word in listed["not_names"]),
        frozenset(fold(word) for word in listed["place_words"]),
        frozenset(fold(word) for word in listed["ambiguous_first_names"]),
        frozenset(fold(word) for word in [*listed["health"], *listed["context"]] if " " not in word),
    )


def alternation(words: Iterable[str]) -> regex.Pattern[str]:
    """Whole-word, plural-tolerant matcher of ``words``; all-capital words (ACL, MS) match in capitals only.

    The words are regex's named lists (a set lookup, not one branch per word): a 1,000-word text is read in a
    few milliseconds whatever the length of the lists."""
    listed = set(words)
    lower = {word for word in listed if not word.isupper()}
    upper = listed - lower
    return regex.compile(
        r"(?<![\p{L}\p{N}])(?:(?i:\L<lower>)|\L<upper>)(?:s|es)?(?![\p{L}\p{N}])",
        lower=sorted(lower) or ["\x00"],
        upper=sorted(upper) or ["\x00"],
    )


def _phrase(words: str) -> str:
    return r"\s+".join(regex.escape(word) for word in words.split())


class Reader:
    """Finds people, health context and identifying details in text, knowing the practice's own world."""

    def __init__(
        self, known_patients: Iterable[str] = (), staff: Iterable[str] = (), partners: Iterable[str] = ()
    ) -> None:
        """``known_patients``: names the authorizations give; ``staff``: the practice's people (never patients);
        ``partners``: businesses and places the practice names (never people)."""
        self.not_names, self.places, self.ambiguous, self.health_words = _folded_terms()
        self.staff = frozenset(word for name in staff for word in _words(name))
        self._known = [_literal(name) for name in known_patients if name.strip()]
        self._partners = [_literal(name) for name in partners if name.strip()]

    def people(self, text: str) -> list[Span]:
        """Mentions of people who may be patients: neither staff, nor places, businesses, eponyms, public figures
        nor personas."""
        found = [Span.of(m) for pattern in self._known for m in pattern.finditer(text)]
        taken = [Span.of(m) for pattern in self._partners for m in pattern.finditer(text)]
        found += [Span.of(m) for m in _INITIALS.finditer(text)]
        found += [Span.of(m) for m in _HANDLE.finditer(text)]
        found += [Span.of(m) for m in _HONORIFIC.finditer(text) if fold(m.group(1)) not in self.not_names]
        found += [Span.of(m, 1) for m in _SIGNED.finditer(text)]
        for match in _RUN.finditer(text):
            span = self._name(text, match)
            if span is not None:
                found.append(span)
        people: list[Span] = []
        staff = set(self.staff)
        for span in sorted(found, key=lambda s: (s.start, -s.end)):
            if any(_overlaps(span, other) for other in [*taken, *people]):
                continue
            if self._written_as_staff(text, span):
                staff.update(_words(span.text))  # "Maria Alvarez, PT" once: "Maria" is staff all through
            elif not self._excluded(text, span):
                people.append(span)
        return [span for span in people if not (_words(span.text) & staff and len(_words(span.text)) <= 2)]

    def health(self, text: str, pieces: Sequence[tuple[int, str]] | None = None) -> list[Span]:
        """Health context: conditions, procedures, body parts, aids, recovery and being a patient (EN, ES).

        ``pieces``: where each of the texts ``text`` joins starts in it, and the text (joined by blank lines, which
        no term spans): each is read once per run, however many drafts of however many channels hold it."""
        spans = [
            Span(start + offset, end + offset, term)
            for key in ("health", "context")
            for offset, piece in (pieces or [(0, text)])
            for start, end, term in health_terms(piece)[key]
        ]
        # "Oakview Physical Therapy", "Sunrise Orthopedics": a name the practice taught says nothing of health.
        taken = [Span.of(m) for pattern in self._partners for m in pattern.finditer(text)]
        return [span for span in spans if not any(_overlaps(span, other) for other in taken)]

    def is_health(self, text: str) -> bool:
        """Whether ``text`` is a condition or procedure (not merely weaker context: a body part, "back to")."""
        return matchers()["health"].fullmatch(text) is not None

    def identifiers(self, text: str) -> list[Span]:
        """Details that identify a person without their name: age over 89, street address, a unique role."""
        # Every age the pattern reads is 9x, 10x or 11x: most texts hold none of those digits.
        found = [Span.of(m) for m in _AGE.finditer(text)] if "9" in text or "10" in text or "11" in text else []
        found += [
            Span.of(m) for m in _ADDRESS.finditer(text) if _street(m) and not self.contact_for_business(text, m.start())
        ]
        found += [Span.of(m) for m in matchers()["role_id"].finditer(text)]
        taken = [Span.of(m) for pattern in self._partners for m in pattern.finditer(text)]  # the practice's address
        return [span for span in found if not any(_overlaps(span, other) for other in taken)]

    def contact_for_business(self, text: str, start: int) -> bool:
        """Whether a phone number or address at ``start`` is given as a business's: a contact cue ("call us",
        "front desk") or a partner's or business's name shortly before it, in the same sentence."""
        before = _SENTENCE_BREAK.split(text[max(0, start - 70) : start])[-1]
        if matchers()["contact_cues"].search(before):
            return True
        if any(pattern.search(before) for pattern in self._partners):
            return True
        return any(fold(word) in self.places for word in _WORDS.findall(before))

    # -- names -------------------------------------------------------------------------------------------------

    def _name(self, text: str, match: regex.Match[str]) -> Span | None:
        found = _run_words(match.group())
        if found is None:
            return None
        skipped, length, folded = found
        start = match.start() + skipped
        span = Span(start, start + length, text[start : start + length])
        # A cue before the run ("our patient") makes any run a name: looked for only when nothing else does.
        return span if self._named(text, start, folded) or _cued(text[max(0, start - 40) : start]) else None

    def _named(self, text: str, start: int, folded: tuple[str, ...]) -> bool:
        """Whether the run of ``folded`` words at ``start`` is a name without a cue before it."""
        first, last = name_lists()
        ambiguous = _folded_terms()[2]
        given = [word for word in folded if word in first and word not in ambiguous]
        if len(folded) == 1:
            return bool(given)
        pieces = {piece for word in folded for piece in word.split("-")}
        if _in_headline(text, start):  # capitals say little in a Title Case line: a first name and a surname only
            return bool(given and folded[0] in given and len(folded) >= 2 and folded[-1] in last)
        known = given or pieces & last or any(word in first for word in folded)
        # Names no list knows (Nnamdi Eze): two or three capitalised words.
        return bool(known or len(folded) <= 3)

    def _written_as_staff(self, text: str, span: Span) -> bool:
        """Whether the name is written as staff's: a credential or role after it, a role before it, "Dr."."""
        after, before = text[span.end : span.end + 60], text[max(0, span.start - 40) : span.start]
        doctor = _DOCTOR_BEFORE.search(before) or span.text.startswith(("Dr.", "Dr "))
        found = matchers()
        return bool(doctor or found["staff_after"].match(after) or found["staff_before"].search(before))

    def _excluded(self, text: str, span: Span) -> bool:
        after, before = text[span.end : span.end + 60], text[max(0, span.start - 40) : span.start]
        found = matchers()
        if found["eponym_after"].match(after) or found["eponym_before"].search(before):
            return True
        if span.text[-2:-1] in _APOSTROPHES and _BUSINESS_POSSESSIVE.match(after):
            return True  # a business: "thanks to Jimmy John's for lunch", "at Murphy's."
        following = _FOLLOWING.match(after)
        if following is not None and fold(following.group(1)) in self.places:
            return True
        sentence = _sentence_around(text, span)
        return bool(found["news"].search(sentence) or found["persona"].search(sentence))


@functools.lru_cache(maxsize=65536)  # each draft of an item holds the same runs of capitalised words
def _run_words(run: str) -> tuple[int, int, tuple[str, ...]] | None:
    """What of a run of capitalised words may name a person, by the word lists alone: how many characters of
    stop words open it, how long the rest is, and its words folded; None when the lists say it names no one."""
    words = run.split()
    folded = [fold(word) for word in words]
    not_names, places, _, health_words = _folded_terms()
    skipped = 0
    # A run starting a sentence begins with an ordinary word as often as with a name: drop the stop words.
    while folded and (folded[0] in not_names or (folded[0] in _TITLES and len(folded) == 1)):
        skipped += len(words[0]) + 1
        words, folded = words[1:], folded[1:]
    if not folded or any(word[-2:-1] in _APOSTROPHES and word[-1:] == "s" for word in words[:-1]):
        return None  # "Harold's Chicken": a possessive inside the run names a business or a place
    # Each test below only rules the run out, so their order changes no answer: those of phi_terms.yaml come
    # first, and a text whose runs they all rule out ("Oakview PT") never loads the name lists (0.1 s a process).
    if any(word in not_names for word in folded) or any(len(w) > 1 and w.isupper() for w in words):
        return None  # an acronym (IL, PT) is no name
    first, last = name_lists()
    if any(word in places for word in folded):
        # "Helen Park" is a person, "Grant Park" and "Lurie Children's Hospital" are places.
        person_like = len(folded) == 2 and folded[0] in first and folded[0] not in _folded_terms()[2]
        if not person_like or folded[1] not in last:
            return None
    if any(word in health_words and word not in first for word in folded):
        return None  # "Knee Pain Workshop"
    return skipped, len(" ".join(words)), tuple(folded)


@functools.lru_cache(maxsize=65536)  # the same 40 characters come before a run in each draft of an item
def _cued(before: str) -> bool:
    """Whether ``before`` (the 40 characters before a run) ends with a cue that a name follows: "our patient"."""
    return matchers()["cue"].search(before) is not None


_TITLES = frozenset({"MR", "MRS", "MS", "MISS", "MX", "DR", "DOCTOR", "DON", "DONA", "SR", "SRA", "SENORA", "SENOR"})


def _words(name: str) -> set[str]:
    """The words of a name, folded, without titles or initials."""
    return {fold(word) for word in name.split() if len(fold(word)) > 1} - _TITLES


def _literal(name: str) -> regex.Pattern[str]:
    return regex.compile(r"(?<![\p{L}])" + _phrase(name.strip()) + r"(?![\p{L}])", regex.IGNORECASE)


def _street(match: regex.Match[str]) -> bool:
    """Whether a number and capitalised words are a street address (a direction or a street word)."""
    return bool(_STREET.search(match.group()))


def _in_headline(text: str, position: int) -> bool:
    """Whether ``position`` is in a line written in Title Case ("Five Stretches for Desk Workers")."""
    return any(start <= position < end for start, end in _headlines(text))


@functools.lru_cache(maxsize=16)
def _headlines(text: str) -> tuple[tuple[int, int], ...]:
    """Where the lines of ``text`` written in Title Case are, found once per text."""
    found = []
    for line in _LINE.finditer(text):
        words = _LONG_WORD.findall(line.group())
        if len(words) >= 3 and sum(word[0].isupper() for word in words) >= 0.6 * len(words):
            found.append(line.span())
    return tuple(found)


def _overlaps(first: Span, second: Span) -> bool:
    return first.start < second.end and second.start < first.end


def _sentence_around(text: str, span: Span) -> str:
    for match in _SENTENCE.finditer(text):
        if match.start() <= span.start < match.end():
            return match.group()
    return text[max(0, span.start - 100) : span.end + 100]
