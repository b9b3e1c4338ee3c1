"""The PHI check every draft passes before approval and again before sending (RULES.md "Healthcare").

A post that names a patient next to a diagnosis, an injury or a surgery is marketing with PHI (45 CFR 164.508(a)(3)),
whether or not its author said it is about a patient. :class:`PhiCheck` reads a draft's subject, preheader and
parts and finds:

- **patient health**: a person's name near health information, in the same paragraph within :data:`NEAR`
  characters. Names are the known patients (from the authorizations on file) and names found in the text: a first
  name from the US census lists the ``names`` package ships, with its surname when one follows, or a courtesy title
  and a surname ("Mrs. Lee"). Health information is a condition, injury or procedure, a body part in a sentence
  about its outcome ("her shoulder is pain-free"), or a care event with a date ("surgery on March 3"). Names
  written as staff ("Maria Alvarez, PT, DPT", "Dr. Lee", "our therapist Sam") are not patients.
- **date of birth**: "DOB", "date of birth" or "born" with a date.
- **phone number** and **email address** of an individual: any that ``phonenumbers`` or ``email-validator`` accept,
  except the practice's own (its phone and sender numbers; addresses at its own domains).

The word lists are ``phi_terms.yaml`` beside this module. No model is loaded: presidio-analyzer's recognisers
work without one, but its install brings spaCy and numpy for what amounts to the same word lists, and its
email recogniser fetches the public-suffix list at run time; medspacy needs spaCy too.

A finding of patient health is covered when the draft's item says it mentions a patient (its authorization was
checked by :meth:`carecast.channel.Channel.admit`) and names that person. The pipeline holds a draft with uncovered
findings until staff fix its text or release it with a reason.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import phonenumbers
import regex
import yaml
from email_validator import EmailNotValidError, validate_email

from carecast.config import Settings
from carecast.model import ContentItem, Draft, content_hash

FindingKind = Literal["patient health", "date of birth", "phone number", "email address"]
#: How far apart (characters, same paragraph) a name and health information count as "near".
NEAR = 160
TERMS_FILE = Path(__file__).with_name("phi_terms.yaml")

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DATE = (
    rf"(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|\d{{1,2}}[/-]\d{{1,2}}(?:[/-]\d{{2,4}})?|{_MONTH}\s+\d{{4}})"
)
_DOB = regex.compile(
    rf"\b(?:D\.?O\.?B\.?|date\s+of\s+birth|birth\s*date|born(?:\s+on)?)\b[\s:,-]*(?:{_DATE}|\d{{4}}-\d{{2}}-\d{{2}})",
    regex.IGNORECASE,
)
_DATE_RE = regex.compile(_DATE, regex.IGNORECASE)
_EMAIL = regex.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: An apostrophe, typed or typographic (U+2019).
_APOSTROPHES = "'\u2019"
_CAPITALISED = regex.compile(rf"(?<![\p{{L}}\p{{N}}])\p{{Lu}}[\p{{L}}{_APOSTROPHES}-]*(?:\.(?=\s))?")
_HONORIFIC = regex.compile(r"^(?:Mr|Mrs|Ms|Miss|Mx)\.?$")
_DOCTOR = regex.compile(r"^(?:Dr|Doctor)\.?$")
_PARAGRAPH = regex.compile(r"\n\s*\n")
_LONG_WORD = regex.compile(r"\p{L}{4,}")
_SENTENCE_END = regex.compile(r"[.!?](?=\s|$)")


@dataclass(frozen=True)
class Finding:
    """Something in a draft that looks like PHI: what, where (``subject``, ``preheader``, ``part N``), the matched
    text and its spans in that text, and for patient health the person named."""

    kind: FindingKind
    where: str
    matched: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    person: str | None = None

    @property
    def summary(self) -> str:
        """E.g. ``patient health in part 1: "John Smith" near "ACL reconstruction"``."""
        quoted = " near ".join(f'"{text}"' for text in self.matched)
        return f"{self.kind} in {self.where}: {quoted}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "where": self.where,
            "matched": list(self.matched),
            "spans": [list(span) for span in self.spans],
            "person": self.person,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(
            kind=data["kind"],
            where=data["where"],
            matched=tuple(data["matched"]),
            spans=tuple((int(start), int(end)) for start, end in data["spans"]),
            person=data.get("person"),
        )


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    text: str

    @classmethod
    def of(cls, text: str, start: int, end: int) -> _Span:
        return cls(start, end, text[start:end])

    @classmethod
    def matched(cls, match: regex.Match[str]) -> _Span:
        return cls(match.start(), match.end(), match.group())


def draft_texts(draft: Draft) -> dict[str, str]:
    """What of a draft is checked, by where it is: subject, preheader and each part (an email's text part holds
    what its HTML shows)."""
    texts = {"subject": draft.subject or "", "preheader": draft.preheader or ""}
    texts |= {f"part {number}": part for number, part in enumerate(draft.parts, start=1)}
    return {where: text for where, text in texts.items() if text}


def fingerprint(draft: Draft) -> str:
    """Identifies the checked text of a draft, so a release holds for that text only: an edit is checked again."""
    return content_hash(*(f"{where}\x00{text}" for where, text in draft_texts(draft).items()))


def highlight(text: str, spans: Iterable[tuple[int, int]], start: str = "**⟦", end: str = "⟧**") -> str:
    """``text`` with each span wrapped in ``start`` and ``end`` (overlapping spans merged)."""
    merged: list[list[int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    pieces, position = [], 0
    for first, last in merged:
        pieces += [text[position:first], start, text[first:last], end]
        position = last
    pieces.append(text[position:])
    return "".join(pieces)


@functools.cache
def _terms() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(TERMS_FILE.read_text(encoding="utf-8"))
    return loaded


def _alternation(terms: Iterable[str]) -> regex.Pattern[str]:
    """Whole-word, plural-tolerant matcher of ``terms``; all-capital terms (ACL, MS) match in capitals only."""
    words = sorted(set(terms), key=len, reverse=True)
    options = [_phrase(word) if word.isupper() else f"(?i:{_phrase(word)})" for word in words]
    return regex.compile(r"(?<![\p{L}\p{N}-])(?:" + "|".join(options) + r")(?:s|es)?(?![\p{L}\p{N}])")


@functools.cache
def _names() -> tuple[frozenset[str], frozenset[str]]:
    """The census first names (male and female) and surnames the ``names`` package ships, upper case."""
    folder = resources.files("names")

    def read(file: str) -> frozenset[str]:
        return frozenset(line.split()[0] for line in folder.joinpath(file).read_text().splitlines() if line.strip())

    return read("dist.male.first") | read("dist.female.first"), read("dist.all.last")


@functools.cache
def _matchers() -> dict[str, regex.Pattern[str]]:
    terms = _terms()
    return {
        "health": _alternation(terms["health"]),
        "body_parts": _alternation(terms["body_parts"]),
        "outcomes": _alternation(terms["outcomes"]),
        "care_events": _alternation(terms["care_events"]),
        "credential": regex.compile(
            r"^,?\s*(?:" + "|".join(regex.escape(c) for c in terms["staff_credentials"]) + r")(?![\p{L}])"
        ),
        "role_after": regex.compile(
            r"^,?\s+(?:is\s+)?(?:our|a|an|the)\s+(?:[\p{L}-]+\s+){0,2}(?:"
            + "|".join(regex.escape(r) for r in terms["staff_roles"])
            + r")\b",
            regex.IGNORECASE,
        ),
        "cued_name": regex.compile(
            r"(?i:\b(?:" + "|".join(_phrase(cue) for cue in terms["name_cues"]) + r"))[,:]?\s+"
            r"(\p{Lu}\p{Ll}+(?:-\p{Lu}\p{Ll}+)?)\s(\p{Lu}\p{Ll}+(?:-\p{Lu}\p{Ll}+)?)(?![\p{L}])"
        ),
        "role_before": regex.compile(
            r"(?:" + "|".join(regex.escape(r) for r in terms["staff_roles"]) + r"),?\s*$", regex.IGNORECASE
        ),
    }


class PhiCheck:
    """Finds PHI in text (see the module's docstring); built once per run for a practice and its known patients."""

    def __init__(
        self,
        *,
        known_patients: Iterable[str] = (),
        practice_phones: Iterable[str] = (),
        practice_domains: Iterable[str] = (),
    ) -> None:
        """``known_patients``: full names from the authorizations; ``practice_phones``: numbers in any form
        ``phonenumbers`` reads (US default); ``practice_domains``: mail domains whose addresses are the practice's."""
        self.known_patients = tuple(name.strip() for name in known_patients if name.strip())
        self.practice_phones = frozenset(filter(None, (_e164(number) for number in practice_phones)))
        self.practice_domains = frozenset(domain.lower().removeprefix("www.") for domain in practice_domains)
        self._first, self._last = _names()
        terms = _terms()
        self._ambiguous = frozenset(terms["ambiguous_first_names"])
        self._known = [regex.compile(r"(?<![\p{L}])" + _phrase(name) + r"(?![\p{L}])") for name in self.known_patients]

    @classmethod
    def for_practice(cls, settings: Settings, known_patients: Iterable[str] = ()) -> PhiCheck:
        """The check for ``settings``' practice: its phone and every channel's sender number and addresses are its
        own, as are addresses at its website's and its email's domains."""
        phones = [settings.practice.phone, *filter(None, (settings.practice.fax, settings.practice.referral_line))]
        domains = {settings.practice.host, settings.practice.email.rpartition("@")[2]}
        for config in settings.channels.values():
            for key, value in config.model_dump().items():
                if isinstance(value, str) and "@" in value and key != "account":
                    domains.add(value.rpartition("@")[2])
                elif isinstance(value, str) and key in ("from_number", "account"):
                    phones.append(value)
        return cls(known_patients=known_patients, practice_phones=phones, practice_domains=domains - {""})

    def check_draft(self, draft: Draft, *, any_health: bool = False) -> list[Finding]:
        """Every finding in the draft's subject, preheader and parts; a name written as staff's in one of them (a
        thread's first post) is staff's in all. With ``any_health`` (a message to people chosen by their care, such
        as patients discharged a while ago: receiving it tells their care) any condition or treatment is one, named
        person or not."""
        texts = draft_texts(draft)
        staff = {token for text in texts.values() for token in self._people(text)[1]}
        findings = [finding for where, text in texts.items() for finding in self.check(text, where, staff)]
        if any_health:
            findings += [
                Finding("patient health", where, (span.text,), ((span.start, span.end),))
                for where, text in texts.items()
                for span in self._health(text)
            ]
        return findings

    def check(self, text: str, where: str = "text", staff: Iterable[str] = ()) -> list[Finding]:
        """Every finding in ``text``; ``where`` names it in the findings; ``staff``: name words known as staff's."""
        findings = self._patient_health(text, where, set(staff))
        findings += [Finding("date of birth", where, (m.group(),), (m.span(),)) for m in _DOB.finditer(text)]
        findings += self._phones(text, where)
        findings += self._emails(text, where)
        return findings

    # -- patient health ----------------------------------------------------------------------------------------

    def _patient_health(self, text: str, where: str, staff: set[str]) -> list[Finding]:
        health = self._health(text)
        if not health:
            return []
        people, _ = self._people(text)
        names = [
            name
            for name in people
            if not _tokens(name.text) & staff and not any(_overlaps(name, span) for span in health)
        ]
        findings: dict[str, Finding] = {}
        for name in names:
            near = [span for span in health if _near(text, name, span)]
            if near and name.text not in findings:
                closest = min(near, key=lambda span: abs(span.start - name.start))
                findings[name.text] = Finding(
                    "patient health",
                    where,
                    (name.text, closest.text),
                    ((name.start, name.end), (closest.start, closest.end)),
                    person=name.text,
                )
        return list(findings.values())

    def _health(self, text: str) -> list[_Span]:
        matchers = _matchers()
        spans = [_Span.matched(m) for m in matchers["health"].finditer(text)]
        for sentence in _sentences(text):
            outcome = matchers["outcomes"].search(text, sentence.start, sentence.end)
            if outcome is not None:
                spans += map(_Span.matched, matchers["body_parts"].finditer(text, sentence.start, sentence.end))
                spans.append(_Span.matched(outcome))
            event = matchers["care_events"].search(text, sentence.start, sentence.end)
            date = _DATE_RE.search(text, sentence.start, sentence.end)
            if event is not None and date is not None and abs(event.start() - date.start()) <= 60:
                spans.append(_Span.of(text, min(event.start(), date.start()), max(event.end(), date.end())))
        return spans

    def _people(self, text: str) -> tuple[list[_Span], set[str]]:
        """Names in ``text`` that are not staff (known patients, then names found), and the words of staff names."""
        found = [_Span.matched(m) for pattern in self._known for m in pattern.finditer(text)]
        not_names = frozenset(_terms()["not_names"])
        cued = [
            _Span.of(text, m.start(1), m.end(2))
            for m in _matchers()["cued_name"].finditer(text)
            if m.group(1) not in not_names and m.group(2) not in not_names and not _in_headline(text, m.start())
        ]
        words = list(_CAPITALISED.finditer(text))
        census = [self._name_at(text, words, index) for index in range(len(words))]
        staff: set[str] = set()
        for name in [*cued, *filter(None, census)]:
            if self._is_staff(text, name):
                staff.update(_tokens(name.text))
            else:
                found.append(name)
        return [name for name in found if not _tokens(name.text) & staff], staff

    def _name_at(self, text: str, words: Sequence[regex.Match[str]], index: int) -> _Span | None:
        word = words[index]
        base = _base(word.group())
        following = words[index + 1] if index + 1 < len(words) else None
        adjacent = following is not None and _adjacent(text, word, following)
        surname = (
            following if adjacent and following is not None and _base(following.group()).upper() in self._last else None
        )
        previous = words[index - 1] if index > 0 else None
        if (
            previous is not None
            and _adjacent(text, previous, word)
            and (_HONORIFIC.match(previous.group()) or _DOCTOR.match(previous.group()))
        ):
            return _Span(previous.start(), word.end(), text[previous.start() : word.end()])
        if previous is not None and _adjacent(text, previous, word) and _base(previous.group()).upper() in self._first:
            return None  # the surname of the name that starts at the previous word
        upper = base.upper()
        if upper not in self._first or (upper in self._ambiguous and surname is None):
            return None
        end = surname.end() if surname is not None else word.start() + len(base)
        if surname is not None:
            end = surname.start() + len(_base(surname.group()))
        return _Span(word.start(), end, text[word.start() : end])

    def _is_staff(self, text: str, name: _Span) -> bool:
        matchers = _matchers()
        after = text[name.end : name.end + 60]
        before = text[max(0, name.start - 40) : name.start]
        return bool(
            _DOCTOR.match(name.text.split()[0])
            or matchers["credential"].match(after)
            or matchers["role_after"].match(after)
            or matchers["role_before"].search(before)
        )

    # -- contact details ---------------------------------------------------------------------------------------

    def _phones(self, text: str, where: str) -> list[Finding]:
        return [
            Finding("phone number", where, (match.raw_string,), ((match.start, match.end),))
            for match in phonenumbers.PhoneNumberMatcher(text, "US")
            if phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164) not in self.practice_phones
        ]

    def _emails(self, text: str, where: str) -> list[Finding]:
        findings = []
        for match in _EMAIL.finditer(text):
            candidate = match.group().rstrip(".")
            try:
                domain = validate_email(candidate, check_deliverability=False).domain.lower()
            except EmailNotValidError:
                continue
            if domain.removeprefix("www.") not in self.practice_domains:
                findings.append(
                    Finding("email address", where, (candidate,), ((match.start(), match.start() + len(candidate)),))
                )
        return findings


def uncovered(findings: Sequence[Finding], items: Sequence[ContentItem]) -> list[Finding]:
    """The findings no authorization covers: patient health is covered when an item of the draft says it
    mentions a patient (so its channel's authorization was checked) and names that person (in its authorization,
    title or text); contact details and dates of birth never are."""
    authorized = [item for item in items if item.mentions_patient]

    def covered(finding: Finding) -> bool:
        if finding.kind != "patient health" or finding.person is None:
            return False
        person = _tokens(finding.person)
        return any(
            person & _tokens(" ".join(filter(None, (item.patient, item.title, item.summary_text))))
            for item in authorized
        )

    return [finding for finding in findings if not covered(finding)]


def _phrase(words: str) -> str:
    """A pattern matching ``words`` literally, any run of white space between them."""
    return r"\s+".join(regex.escape(word) for word in words.split())


def _e164(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, "US")
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _base(word: str) -> str:
    """A capitalised word without a possessive or a trailing full stop."""
    return regex.sub(rf"(?:[{_APOSTROPHES}]s?|\.)$", "", word)


def _tokens(name: str) -> set[str]:
    return {_base(token).lower() for token in name.split() if not _HONORIFIC.match(token) and not _DOCTOR.match(token)}


def _adjacent(text: str, first: regex.Match[str], second: regex.Match[str]) -> bool:
    return text[first.end() : second.start()] == " " and not first.group().endswith(("'s", "\u2019s"))


def _overlaps(first: _Span, second: _Span) -> bool:
    return first.start < second.end and second.start < first.end


def _near(text: str, name: _Span, health: _Span) -> bool:
    first, second = (name, health) if name.start <= health.start else (health, name)
    gap = text[first.end : second.start]
    return len(gap) <= NEAR and _PARAGRAPH.search(gap) is None


def _in_headline(text: str, position: int) -> bool:
    """Whether ``position`` is in a line written in Title Case ("How to Keep Logging Miles"), where capitals say
    nothing about names."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    words = _LONG_WORD.findall(text[start : end if end >= 0 else len(text)])
    return len(words) >= 3 and sum(word[0].isupper() for word in words) >= 0.6 * len(words)


def _sentences(text: str) -> list[_Span]:
    spans, start = [], 0
    for end in [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]:
        if end > start:
            spans.append(_Span(start, end, text[start:end]))
        start = end
    return spans
