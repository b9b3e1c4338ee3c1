"""Holds that are never silent and never sink a digest; whose contact details are PHI; whom an authorization
covers; the held-out measure and the check's speed (issue 19)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from carecast import pipeline
from carecast.config import Settings
from carecast.ledger import Ledger
from carecast.model import now_utc
from carecast.phi import PhiCheck, uncovered
from carecast.practice import load_settings
from tests import phi_measure
from tests.conftest import write_config
from tests.factories import make_item
from tests.test_phi import outbox_text

DATA = Path(__file__).parent / "data"
PHI_STORY = "Congrats to John Smith, back on the court six months after his ACL reconstruction!"
FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Oakview Physical Therapy Blog</title><link>https://www.oakviewpt.com/blog</link>
<description>News</description>{items}</channel></rss>
"""
ITEM = """<item><title>{title}</title><link>https://www.oakviewpt.com/blog/{slug}</link>
<guid>https://www.oakviewpt.com/blog/{slug}</guid><pubDate>{date}</pubDate><description>{text}</description></item>"""


def feed(*posts: tuple[str, str, str]) -> str:
    """An RSS feed of the practice's blog with ``posts`` (slug, title, text), published yesterday."""
    date = (now_utc() - timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return FEED.format(items="".join(ITEM.format(slug=s, title=t, text=x, date=date) for s, t, x in posts))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The sample practice posting its blog feed (samples/phi.xml) on the newsletter only, every run, no review."""
    others = {name: {"enabled": False} for name in ("x", "sms", "mastodon")}
    file = write_config(
        tmp_path,
        {
            "practice": {"partners": ["Hartwell Fitness"]},
            "sources": {"blog": {"url": "samples/phi.xml"}},
            "channels": {"newsletter": {"sources": ["blog"], "schedule": None}, **others},
        },
    )
    (file.parent / "samples" / "phi.xml").write_text(
        feed(("stretches", "Five desk stretches", "Sitting all day? Try these."), ("john", "Back on court", PHI_STORY))
    )
    return load_settings(file)


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    opened = Ledger(settings.ledger_url())
    yield opened
    opened.close()


def run(settings: Settings, ledger: Ledger) -> list[pipeline.Outcome]:
    for source in ("blog",):
        pipeline.ingest(settings, ledger, source)
    return pipeline.adapt(settings, ledger, "newsletter") + pipeline.publish(settings, ledger, "newsletter")


def test_a_digest_goes_out_on_time_without_its_held_item_which_joins_the_next_issue_once_released(
    settings: Settings, ledger: Ledger
) -> None:
    outcomes = run(settings, ledger)
    # Held as it is drafted, and reported again as the issue goes out without it.
    held, again = [outcome for outcome in outcomes if outcome.state == "held"]
    assert again.item_ids == held.item_ids and again.detail.startswith("still held")
    assert held.item_ids == ("rss:blog:https://www.oakviewpt.com/blog/john",)
    assert '"John Smith" near "ACL' in held.detail and "left out of this issue" in held.detail
    [published] = [outcome for outcome in outcomes if outcome.state == "published"]
    assert published.item_ids == ("rss:blog:https://www.oakviewpt.com/blog/stretches",)
    assert "Five desk stretches" in outbox_text(settings) and "John Smith" not in outbox_text(settings)

    # Told once; the held draft is never sent alone, and does not expire while it waits.
    assert [o.state for o in run(settings, ledger)] == []
    [draft] = ledger.drafts("newsletter", ["held"])
    assert "possible PHI" in (draft.reason or "")
    ledger.release(draft.id, "AUTH-2026-0301 signed today", "Jo")

    outcomes = run(settings, ledger)
    [published] = [outcome for outcome in outcomes if outcome.state == "published"]
    assert published.item_ids == held.item_ids
    assert "John Smith" in outbox_text(settings)
    assert ledger.drafts("newsletter", ["held"]) == [] and run(settings, ledger) == []


def test_an_item_held_out_of_an_issue_that_goes_out_is_reported_again(settings: Settings, ledger: Ledger) -> None:
    run(settings, ledger)
    posts = [("stretches", "Five desk stretches", "Sitting all day?"), ("john", "Back on court", PHI_STORY)]
    (settings.file.parent / "samples" / "phi.xml").write_text(feed(*posts, ("hours", "New hours", "Open Saturdays.")))
    outcomes = run(settings, ledger)
    assert [o.state for o in outcomes] == ["published", "held"]
    assert outcomes[1].detail.startswith("still held for possible PHI, left out of the issue sent now")


def test_a_second_unauthorized_patient_in_an_authorized_story_is_held() -> None:
    text = (
        "Linda Moreau is back to tennis after her shoulder surgery, and her doubles partner Gail Hutchins, who we "
        "treated for tennis elbow, is right there with her!"
    )
    story = make_item("a", summary=text, mentions_patient=True, patient="Linda Moreau")
    check = PhiCheck(known_patients=["Linda Moreau"])
    found = check.check(text)
    assert {finding.person for finding in found} == {"Linda Moreau", "Gail Hutchins"}
    assert [finding.person for finding in uncovered(found, [story])] == ["Gail Hutchins"]
    alone = "Linda Moreau is back to tennis after her shoulder surgery!"
    assert (
        uncovered(check.check(alone), [make_item("a", summary=alone, mentions_patient=True, patient="Linda Moreau")])
        == []
    )


@pytest.mark.parametrize(
    "text",
    [
        "Questions? Call us at (312) 555-0199.",
        "Book online or call our front desk at 312-555-0188.",
        "Hartwell Fitness (773-555-0110) offers our patients a free month.",
        "Sunrise Orthopedics can be reached at (847) 555-0123; email info@sunriseortho.com.",
        "Call +1 312 555 0142 or write to hello@oakviewpt.com.",
    ],
)
def test_the_practice_and_a_business_number_are_not_held(settings: Settings, text: str) -> None:
    assert PhiCheck.for_practice(settings).check(text) == []


@pytest.mark.parametrize(
    "text", ["Text Dana at 312-555-0187 for the carpool.", "Mr. Ellison's daughter can reach him at (773) 555-0187."]
)
def test_a_persons_number_is_held(settings: Settings, text: str) -> None:
    assert [finding.kind for finding in PhiCheck.for_practice(settings).check(text)] == ["phone number"]


def test_a_thousand_word_item_is_checked_in_under_50_ms() -> None:
    check = PhiCheck(known_patients=["Linda Moreau"], staff=["Dr. Priya Raman"], partners=["Hartwell Fitness"])
    paragraph = (
        "Sitting all day? Dr. Priya Raman shows five stretches for the neck and lower back, with Hartwell Fitness. "
        "Our patients Maria and Kevin Doyle joined the class on Saturday at Grant Park; call us at (312) 555-0199. "
    )
    text = " ".join([paragraph] * 30)  # 1,050 words
    assert len(text.split()) >= 1000
    findings = check.check(text)  # the word lists and name data are loaded once per process (bench: phi-startup)
    timings = []
    for _ in range(5):  # the best of five: the machine is shared, and a busy neighbour is not the check's cost
        started = time.perf_counter()
        check.check(text)
        timings.append(time.perf_counter() - started)
    assert findings and min(timings) < 0.05, f"{min(timings) * 1000:.1f} ms"


def test_the_tuning_set_through_every_channel() -> None:
    score = phi_measure.measure(DATA / "phi_tuning.yaml")["all"]
    print(f"\ntuning set, every channel: recall {score.recall:.3f}, precision {score.precision:.3f}")
    assert score.recall >= 0.95 and score.precision >= 0.95, (score.missed, score.false_alarms)


def test_the_held_out_set_through_every_channel() -> None:
    """The issue's targets on the set written before the rules were read (README, HIPAA). Never tune on it: when
    this fails, add the failing kind of sentence to the tuning set, in other words, and fix it there."""
    score = phi_measure.measure(DATA / "phi_heldout.yaml")["all"]
    print(f"\nheld-out set, every channel: recall {score.recall:.3f}, precision {score.precision:.3f}")
    assert score.recall >= 0.90 and score.precision >= 0.80
