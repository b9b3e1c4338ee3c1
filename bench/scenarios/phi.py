"""The PHI check's start-up and checks, against one regular expression."""

from __future__ import annotations

from typing import ClassVar

from bench.scenarios.base import (
    SENTENCES,
    Scenario,
)


class PhiStartup(Scenario):
    """The PHI check's start-up (its import, name data and word lists, and a first check: the "first line") and
    then ``size`` checks of a 1,000-word item, in a process that imported nothing of CareCast before the clock."""

    name = "phi-startup"
    unit = "1,000-word items"
    sizes: ClassVar[dict[str, int]] = {"full": 1000, "default": 100, "quick": 5}
    baseline_says = "re: one alternation of 40 condition words and one of capitalised pairs, no name data"
    preload = ()
    baseline_imports = "phi"

    def prepare(self, feeds: dict[str, bytes]) -> None:
        self.write_config({})

    def text(self) -> str:
        """A 1,000-word blog post of the practice naming staff, a partner and a patient in passing."""
        return " ".join([*SENTENCES, "Our patient Kevin Doyle said his knee feels great."] * 12)

    def carecast(self) -> dict[str, float]:
        from carecast.phi import PhiCheck
        from carecast.practice import load_settings

        check = PhiCheck.for_practice(load_settings(self.config_file()), ["Linda Moreau"])
        text = self.text()
        print(len(check.check(text)))  # the first line: start-up done
        for _ in range(self.size):
            check.check(text)
        return {}

    def baseline(self) -> dict[str, float]:
        import re

        conditions = re.compile(r"\b(?:" + "|".join(BASELINE_CONDITIONS) + r")\b", re.IGNORECASE)
        names = re.compile(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b")
        text = self.text()
        print(bool(conditions.search(text) and names.search(text)))
        for _ in range(self.size):
            [(m.start(), n.start()) for m in conditions.finditer(text) for n in names.finditer(text)]
        return {}


BASELINE_CONDITIONS = [
    "ACL",
    "meniscus",
    "rotator",
    "cuff",
    "tendinitis",
    "bursitis",
    "fasciitis",
    "sciatica",
    "herniated",
    "stenosis",
    "scoliosis",
    "arthritis",
    "osteoporosis",
    "fracture",
    "broken",
    "sprain",
    "strain",
    "tear",
    "torn",
    "concussion",
    "migraine",
    "whiplash",
    "stroke",
    "surgery",
    "operation",
    "replacement",
    "reconstruction",
    "rehab",
    "recovery",
    "injury",
    "injured",
    "crutches",
    "walker",
    "cane",
    "wheelchair",
    "brace",
    "sling",
    "pain",
    "therapy",
    "diagnosed",
]
