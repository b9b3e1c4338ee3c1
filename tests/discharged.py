"""A generator of EMR "discharged patients" exports (the sample's column names) and referring-provider lists, with
what CareCast must make of them worked out independently of CareCast: who is eligible for a reactivation between
two discharge dates, who opted out, who lacks consent, whose row is unusable, and who shares an address with a
provider.

    python -m tests.discharged 20000 FOLDER   # FOLDER/discharged-patients.csv to try `carecast run` on
"""

from __future__ import annotations

import csv
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import phonenumbers

HEADER = [
    "Patient ID",
    "First Name",
    "Last Name",
    "Email",
    "Mobile Phone",
    "Discharge Date",
    "Marketing Consent Date",
    "Marketing Consent Method",
    "Marketing Consent Wording",
    "Opt Status",
    "Time Zone",
]
PROVIDER_HEADER = ["Provider Name", "Office", "Email", "Specialty", "Office Phone"]
WORDING = (
    "I agree to receive marketing texts and emails from Oakview Physical Therapy. Consent is not a condition of "
    "treatment. Msg & data rates may apply. Reply STOP to opt out."
)
FIRST = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena", "Mo", "Nia"]
LAST = ["Adams", "Baker", "Cruz", "Diaz", "Evans", "Fox", "Gray", "Hill", "Ito", "Jones", "Khan", "Lopez", "Moss"]
AREAS = ["312", "773", "630", "847", "708", "224", "331"]


@dataclass
class Export:
    """The files written and who is who in them (phones and emails as CareCast normalises them)."""

    rows: int
    discharged: dict[str, date] = field(default_factory=dict)  # phone -> discharge date (usable rows only)
    emails: dict[str, str] = field(default_factory=dict)  # phone -> email
    no_consent: set[str] = field(default_factory=set)
    opted_out: set[str] = field(default_factory=set)
    providers_phones: set[str] = field(default_factory=set)
    providers_emails: set[str] = field(default_factory=set)
    unusable: int = 0

    def eligible(self, oldest: date, newest: date, *, by: str = "phone") -> set[str]:
        """Who may get the reactivation: discharged between ``oldest`` and ``newest`` (inclusive), with consent,
        not opted out, no address of theirs on the provider list; as phones (``by="phone"``) or emails."""
        phones = {
            phone
            for phone, day in self.discharged.items()
            if oldest <= day <= newest
            and phone not in self.no_consent | self.opted_out | self.providers_phones
            and self.emails[phone] not in self.providers_emails
        }
        return phones if by == "phone" else {self.emails[phone] for phone in phones}


def _phones(rng: random.Random) -> Iterator[str]:
    """An endless supply of distinct valid US mobile-looking numbers, deterministic for ``rng``."""
    while True:
        number = f"+1{rng.choice(AREAS)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            yield number


def write_export(folder: Path, rows: int, today: date, seed: int = 22) -> Export:
    """``folder/discharged-patients.csv`` of ``rows`` patients discharged within two years before ``today`` and
    ``folder/referring-providers.csv`` of 40 providers, two of whom are also in the export (same phone or email)."""
    rng = random.Random(seed)
    phones = _phones(rng)
    export = Export(rows)
    seen: set[str] = set()
    providers: list[list[str]] = []
    with (folder / "discharged-patients.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(HEADER)
        for number in range(rows):
            phone = next(phones)
            while phone in seen:
                phone = next(phones)
            seen.add(phone)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = f"{first.lower()}.{last.lower()}.{number}@example.com"
            day = today - timedelta(days=rng.randint(0, 730))
            roll = rng.random()
            consent = ["", "", ""] if roll < 0.08 else ["2025-06-01T09:00:00-05:00", "intake form (signed)", WORDING]
            status = "opted_out" if 0.08 <= roll < 0.13 else "subscribed"
            written_phone = phone
            if 0.13 <= roll < 0.135:
                written_phone = phone[:-4]  # a typo in the EMR: the row cannot be used
                export.unusable += 1
            else:
                export.discharged[phone] = day
                export.emails[phone] = email
                if not consent[0]:
                    export.no_consent.add(phone)
                if status == "opted_out":
                    export.opted_out.add(phone)
            if number in (5, 6):  # a provider who was once a patient, by phone and by email
                providers.append([f"Dr. {first} {last}", "Lakeview Orthopedics", email, "Orthopedics", phone])
            writer.writerow(
                [
                    10000 + number,
                    first,
                    last,
                    email,
                    written_phone,
                    f"{day:%m/%d/%Y}",
                    *consent,
                    status,
                    "America/Chicago",
                ]
            )
    with (folder / "referring-providers.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(PROVIDER_HEADER)
        for number in range(38):
            providers.append([f"Dr. P{number}", "Clinic", f"dr.p{number}@clinic.example.org", "Orthopedics", ""])
        providers[0][2] = "someone.else@clinic.example.org"  # shares the phone only
        providers[1][4] = ""  # shares the email only
        writer.writerows(providers)
    export.providers_phones = {row[4] for row in providers if row[4]}
    export.providers_emails = {row[2] for row in providers}
    return export


if __name__ == "__main__":
    made = write_export(Path(sys.argv[2]), int(sys.argv[1]), date.today())
    print(f"{made.rows} rows in {Path(sys.argv[2]) / 'discharged-patients.csv'}")
