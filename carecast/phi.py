"""The PHI check every item and draft passes (RULES.md "Healthcare"; README, HIPAA).

A post that names a patient next to their health, or says they are a patient at all, is marketing with PHI
(45 CFR 164.508(a)(3)), whether or not its author said it is about a patient. :class:`PhiCheck` reads all of a draft
together (subject, preheader, every part of a thread, alt text, link-card and event titles) and the item's own text,
and finds:

- **patient health**: a person (:class:`carecast.phi_text.Reader`: name lists, initials, handles, signed
  testimonials; not staff, places, businesses, eponyms, public figures or personas) within :data:`NEAR` characters
  of health context (conditions, procedures, body parts, aids, recovery, being a patient; English and Spanish).
- **identifying details**: an age over 89, a street address or a unique role near health context, without a name.
- **date of birth**: "DOB", "date of birth" or "born" with a date.
- **phone number** and **email address** of an individual: any that ``phonenumbers`` or ``email-validator`` accept,
  unless the practice's own, or given as a business's ("call us at", "front desk", a partner's name before it).

A finding is covered only by an authorization naming that very person (:func:`uncovered`): a second patient in an
authorized story is not. The pipeline holds a draft with uncovered findings until staff fix its text or release it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import phonenumbers
import regex
from email_validator import EmailNotValidError, validate_email

from carecast.config import Settings
from carecast.model import ContentItem, Draft, content_hash
from carecast.phi_text import Reader, Span, fold

FindingKind = Literal["patient health", "identifying details", "date of birth", "phone number", "email address"]
#: How far apart (characters) a person and health context count as "near": a short post, or a thread's posts.
NEAR = 320
_NAME_WORD = regex.compile(r"[\p{L}\p{M}'\u2019.-]+")
#: The local parts of a business's mailbox, never a person's.
_ROLE_MAILBOXES = frozenset(
    [
        "info",
        "hello",
        "hola",
        "events",
        "contact",
        "office",
        "frontdesk",
        "front.desk",
        "billing",
        "appointments",
        "admin",
        "support",
        "team",
        "care",
        "jobs",
        "news",
        "help",
        "booking",
        "bookings",
        "reception",
    ]
)

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
#: A link, with or without its scheme. Its path is a short link's random code or a slug, never prose: read as words,
#: a code such as "Ge3xQ" is a first name, and a link beside "pain" would hold the post at random.
_LINK = regex.compile(r"\bhttps?://\S+|\b(?:[\w-]+\.)+\p{L}{2,}/\S*")
_E164 = phonenumbers.PhoneNumberFormat.E164


@functools.lru_cache(maxsize=4096)  # an item's texts are checked with every draft made from them
def _without_links(text: str) -> str:
    """``text`` with its links blanked, not cut: every span found in it is where it is in ``text``. A link holds no
    space, so texts joined by blank lines lose the links each loses alone."""
    return _LINK.sub(lambda link: " " * len(link.group()), text)


#: Words of the health list that name a visit, not a condition or treatment: an invitation to come back may say them.
_VISITS = frozenset({"visit", "visits", "appointment", "appointments", "session", "sessions", "cita", "citas"})


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


def draft_texts(draft: Draft) -> dict[str, str]:
    """What of a draft is checked, by where it is: subject, preheader, each part (an email's text part holds what
    its HTML shows), the image's alt text and the texts of its details (a link card's or an event's title)."""
    texts = {"subject": draft.subject or "", "preheader": draft.preheader or ""}
    texts |= {f"part {number}": part for number, part in enumerate(draft.parts, start=1)}
    texts["alt text"] = draft.image_alt or ""
    texts |= {f"details {key}": text for key, text in _detail_texts(draft.details)}
    return {where: text for where, text in texts.items() if text}


def _detail_texts(details: Any, key: str = "") -> list[tuple[str, str]]:
    """The strings a draft's details hold (a link card's title, an event's title), by their key path; not links."""
    if isinstance(details, dict):
        return [pair for name, value in details.items() for pair in _detail_texts(value, f"{key}.{name}".strip("."))]
    if isinstance(details, list):
        return [pair for number, value in enumerate(details) for pair in _detail_texts(value, f"{key}.{number}")]
    if isinstance(details, str) and " " in details.strip() and not details.startswith(("http://", "https://")):
        return [(key, details)]
    return []


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


class PhiCheck:
    """Finds PHI in text (see the module's docstring); built once per run for a practice and its known patients."""

    def __init__(
        self,
        *,
        known_patients: Iterable[str] = (),
        practice_phones: Iterable[str] = (),
        practice_domains: Iterable[str] = (),
        staff: Iterable[str] = (),
        partners: Iterable[str] = (),
    ) -> None:
        """``known_patients``: full names from the authorizations; ``practice_phones``: numbers in any form
        ``phonenumbers`` reads (US default); ``practice_domains``: mail domains whose addresses are the practice's;
        ``staff``: its people's names; ``partners``: names of its partners, sponsors and places (and its address)."""
        self.known_patients = tuple(name.strip() for name in known_patients if name.strip())
        self.practice_phones = frozenset(filter(None, (_e164(number) for number in practice_phones)))
        self.practice_domains = frozenset(domain.lower().removeprefix("www.") for domain in practice_domains)
        self.reader = Reader(self.known_patients, staff, partners)

    @classmethod
    def for_practice(cls, settings: Settings, known_patients: Iterable[str] = ()) -> PhiCheck:
        """The check for ``settings``' practice: its phone and every channel's sender number and addresses are its
        own, as are addresses at its website's and its email's domains; its staff, partners and street address
        (``practice.staff``, ``practice.partners``) are nobody's PHI."""
        practice = settings.practice
        phones = [practice.phone, *filter(None, (practice.fax, practice.referral_line))]
        domains = {practice.host, practice.email.rpartition("@")[2]}
        for config in settings.channels.values():
            for key, value in config.model_dump().items():
                if isinstance(value, str) and "@" in value and key != "account":
                    domains.add(value.rpartition("@")[2])
                elif isinstance(value, str) and key in ("from_number", "account"):
                    phones.append(value)
        partners = [practice.name, practice.short_name, practice.address.street, *practice.partners]
        # A newsletter's own name ("Oakview PT Provider Update") is the practice's, never a person.
        partners += [config.list_name for config in settings.channels.values() if hasattr(config, "list_name")]
        return cls(
            known_patients=known_patients,
            practice_phones=phones,
            practice_domains=domains - {""},
            staff=practice.staff,
            partners=partners,
        )

    def check_draft(self, draft: Draft, items: Sequence[ContentItem] = ()) -> list[Finding]:
        """Every finding in all of the draft's texts (:func:`draft_texts`) and its ``items``' own texts (title,
        summary, alt text), read together: a name in one post of a thread and a condition in the next are found,
        and a template or a shortening can neither hide a finding nor make one. Each finding names where its
        person is."""
        texts = draft_texts(draft)
        for number, item in enumerate(items, start=1):
            own = {"title": item.title, "text": item.summary_text, "alt text": item.image_alt or ""}
            texts |= {f"item {number} {where}": text for where, text in own.items() if text}
        return self.check_texts(texts)

    def any_health(self, draft: Draft) -> list[Finding]:
        """Every condition, injury or procedure the draft's texts name, whoever they are about: what a message to
        people chosen by their care (patients discharged a while ago: receiving it tells their care) may not name
        at all (:func:`carecast.recipients.chosen_by_care`)."""
        return [
            Finding("patient health", where, (span.text,), ((span.start, span.end),))
            for where, text in draft_texts(draft).items()
            for span in self.reader.health(text)
            # A condition or procedure: not "see you again", nor the visit or appointment it invites to.
            if self.reader.is_health(span.text) and span.text.lower() not in _VISITS
        ]

    def check_texts(self, texts: dict[str, str]) -> list[Finding]:
        """Every finding in ``texts`` (by where they are) read as one text, each mapped back to where it is."""
        pieces, position = [], 0
        for text in texts.values():
            pieces.append((position, text))
            position += len(text) + 2
        places = [(start, place) for (start, _), place in zip(pieces, texts.items(), strict=True)]

        def local(finding: Finding) -> Finding:
            offset, (where, _) = next(place for place in reversed(places) if place[0] <= finding.spans[0][0])
            spans = tuple(
                (start - offset, end - offset) for start, end in finding.spans if offset <= start < offset + len(_)
            )
            return replace(finding, where=where, spans=spans)

        joined = "\n\n".join(text for _, text in pieces)
        return [local(finding) for finding in self.check(joined, pieces=pieces)]

    def check(self, text: str, where: str = "text", pieces: Sequence[tuple[int, str]] | None = None) -> list[Finding]:
        """Every finding in ``text``; ``where`` names it in the findings. ``pieces``: the texts ``text`` joins by
        blank lines, each with where it starts (the health terms and phone numbers of each are found once per run,
        :func:`carecast.phi_text.health_terms`, :func:`_phone_numbers`: neither spans a blank line)."""
        if pieces:
            pieces = [(start, _without_links(piece)) for start, piece in pieces]
            text = "\n\n".join(piece for _, piece in pieces)
        else:
            text = _without_links(text)
            pieces = [(0, text)]
        findings = self._patient_health(text, where, pieces)
        findings += [Finding("date of birth", where, (m.group(),), (m.span(),)) for m in _DOB.finditer(text)]
        findings += self._phones(text, where, pieces)
        findings += self._emails(text, where)
        return findings

    def _patient_health(self, text: str, where: str, pieces: Sequence[tuple[int, str]]) -> list[Finding]:
        health = self.reader.health(text, pieces)
        if not health:
            return []
        found: dict[str, Finding] = {}
        people = [(span, "patient health") for span in self.reader.people(text)]
        details = [(span, "identifying details") for span in self.reader.identifiers(text)]
        for span, kind in [*people, *details]:
            near = [h for h in health if not _overlaps(span, h) and _gap(span, h) <= NEAR]
            if near and span.text not in found:
                strong = [h for h in near if self.reader.is_health(h.text)] or near  # "ACL" says more than "back on"
                closest = min(strong, key=lambda h: _gap(span, h))
                found[span.text] = Finding(
                    kind,  # type: ignore[arg-type]
                    where,
                    (span.text, closest.text),
                    ((span.start, span.end), (closest.start, closest.end)),
                    person=span.text if kind == "patient health" else None,
                )
        return list(found.values())

    def _phones(self, text: str, where: str, pieces: Sequence[tuple[int, str]]) -> list[Finding]:
        return [
            Finding("phone number", where, (raw,), ((start + offset, end + offset),))
            for offset, piece in pieces
            for raw, start, end, number in _phone_numbers(piece)
            if number not in self.practice_phones and not self.reader.contact_for_business(text, start + offset)
        ]

    def _emails(self, text: str, where: str) -> list[Finding]:
        findings = []
        for match in _EMAIL.finditer(text):
            candidate = match.group().rstrip(".")
            try:
                domain = validate_email(candidate, check_deliverability=False).domain.lower()
            except EmailNotValidError:
                continue
            own = domain.removeprefix("www.") in self.practice_domains
            mailbox = candidate.partition("@")[0].lower() in _ROLE_MAILBOXES
            if not own and not mailbox and not self.reader.contact_for_business(text, match.start()):
                findings.append(
                    Finding("email address", where, (candidate,), ((match.start(), match.start() + len(candidate)),))
                )
        return findings


def uncovered(findings: Sequence[Finding], items: Sequence[ContentItem]) -> list[Finding]:
    """The findings no authorization covers: patient health is covered when an item of the draft says it mentions
    a patient (so its channel's authorization was checked) and the finding's person is the one its authorization
    names (by words of their name: "Linda" is Linda Moreau; without a name on the authorization, whom its item
    names). A second person in an authorized story is not
    covered, nor are identifying details without a name, contact details and dates of birth."""
    authorized = [item for item in items if item.mentions_patient]

    def covered(finding: Finding) -> bool:
        if finding.kind != "patient health" or finding.person is None:
            return False
        person = _tokens(finding.person)
        # An authorization that names no patient (written before they were named) covers whom its item names.
        return any(
            person and person <= _tokens(item.patient or f"{item.title} {item.summary_text}") for item in authorized
        )

    return [finding for finding in findings if not covered(finding)]


@functools.lru_cache(maxsize=4096)
def _phone_numbers(text: str) -> tuple[tuple[str, int, int, str], ...]:
    """The phone numbers ``phonenumbers`` finds in ``text`` (US default): (as written, start, end, E.164) each. Kept
    for the last 4,096 texts: an item's text is checked with every draft of every channel made from it. A number
    never spans a blank line (its punctuation holds no line break), so the numbers of texts joined by blank lines
    are those of each text."""
    if len(_DIGIT.findall(text)) < FEWEST_PHONE_DIGITS:
        return ()  # phonenumbers' matcher weighs every run of digits, "(tip 42)" as much as a number
    return tuple(
        (match.raw_string, match.start, match.end, phonenumbers.format_number(match.number, _E164))
        for match in phonenumbers.PhoneNumberMatcher(text, "US")
    )


#: Fewer digits than a text needs for ``PhoneNumberMatcher(text, "US")`` to find a number in it: a match is a valid
#: number, whose national significant number has at least 4 digits in every region (``possible_length``), 10 in the
#: US (a number written without a country code); one with its country code written shows that code too. Its
#: digits are the text's own (the matcher reads no letters as digits), save those a region's national prefix
#: rule adds: ``tests/test_phi_clauses.py`` derives the fewest from phonenumbers' metadata (6 today).
FEWEST_PHONE_DIGITS = 5
_DIGIT = re.compile(r"\d")  # what phonenumbers' own patterns (Python's re) read as a digit


def _e164(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, "US")
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, _E164)


def _tokens(name: str) -> set[str]:
    return {fold(token) for token in _NAME_WORD.findall(name)} - {"MR", "MRS", "MS", "MISS", "MX", "DR", "DOCTOR", ""}


def _overlaps(first: Span, second: Span) -> bool:
    return first.start < second.end and second.start < first.end


def _gap(first: Span, second: Span) -> int:
    return max(first.start, second.start) - min(first.end, second.end)
