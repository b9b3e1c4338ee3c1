"""The PHI check: measured on a labelled set of sentences, and held drafts through the pipeline and the outbox."""

from __future__ import annotations

from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
import yaml

from carecast import pipeline
from carecast.cli import main
from carecast.config import Settings
from carecast.errors import LedgerError
from carecast.ledger import Ledger
from carecast.model import Draft, now_utc
from carecast.phi import PhiCheck, fingerprint, highlight, uncovered
from carecast.practice import load_settings
from tests import test_pipeline
from tests.conftest import write_config

LABELLED = Path(__file__).parent / "data" / "phi_labelled.yaml"
EXAMPLE = "Congrats to John Smith, back on the court six months after his ACL reconstruction!"
PRACTICE_CHECK = PhiCheck(practice_phones=["+1 312 555 0142"], practice_domains=["oakviewpt.com"])


def test_the_labelled_set_recall_and_precision() -> None:
    rows = yaml.safe_load(LABELLED.read_text(encoding="utf-8"))
    assert len(rows) >= 60
    found = [(row["phi"], bool(PRACTICE_CHECK.check(row["text"]))) for row in rows]
    true_positives = sum(label and flagged for label, flagged in found)
    phi = sum(label for label, _ in found)
    flagged = sum(flagged for _, flagged in found)
    recall, precision = true_positives / phi, true_positives / flagged
    print(f"\nPHI check on {len(rows)} sentences ({phi} PHI): precision {precision:.3f}, recall {recall:.3f}")
    missed = [row["text"] for row in rows if row["phi"] and not PRACTICE_CHECK.check(row["text"])]
    assert recall >= 0.95, missed
    assert precision >= 0.85


@pytest.mark.parametrize(
    ("text", "kind", "matched"),
    [
        (EXAMPLE, "patient health", ("John Smith", "ACL")),
        ("Mrs. Lee, DOB 4/12/1950, is doing great.", "date of birth", ("DOB 4/12/1950",)),
        ("Text Dana at 312-555-0187 for the carpool.", "phone number", ("312-555-0187",)),
        ("Write to dana.k@gmail.com with your photos.", "email address", ("dana.k@gmail.com",)),
    ],
)
def test_each_kind_of_finding(text: str, kind: str, matched: tuple[str, ...]) -> None:
    [finding] = PRACTICE_CHECK.check(text)
    assert (finding.kind, finding.matched) == (kind, matched)
    assert [text[start:end] for start, end in finding.spans] == list(matched)


def test_the_practice_contact_details_and_staff_are_not_phi() -> None:
    text = (
        "Call +1 312 555 0142 or write to hello@oakviewpt.com. Celebrating Maria Alvarez, PT, DPT, who built our "
        "post-surgical knee program."
    )
    assert PRACTICE_CHECK.check(text) == []


@pytest.mark.parametrize(
    "link", ["https://go.oakviewpt.com/Ge3xQ-Lk", "go.oakviewpt.com/Ko_9Hy", "https://oakviewpt.com/blog/?ref=Maria"]
)
def test_a_link_is_never_read_as_a_name(link: str) -> None:
    # Short links' codes are random: one that starts like a first name must not hold the post at random.
    text = f"Five stretches for low back pain: {link} Oakview PT"
    assert PRACTICE_CHECK.check(text) == []
    named = f"Congrats to John Smith on his ACL recovery! {link}"
    [finding] = PRACTICE_CHECK.check(named)
    assert finding.matched == ("John Smith", "ACL")


def test_a_known_patient_is_found_by_name_and_highlighted() -> None:
    check = PhiCheck(known_patients=["Dana Whitfield"])
    [finding] = check.check("So proud of Dana Whitfield: her shoulder is pain-free.")
    assert finding.person == "Dana Whitfield"
    assert highlight("So proud of Dana Whitfield: her shoulder is pain-free.", finding.spans).startswith(
        "So proud of **⟦Dana Whitfield⟧**"
    )


def test_an_authorized_item_naming_the_person_covers_the_finding() -> None:
    from tests.factories import make_item

    draft = Draft(channel="newsletter", item_ids=("a",), parts=(EXAMPLE,))
    findings = PRACTICE_CHECK.check_draft(draft)
    story = make_item("a", summary=EXAMPLE)
    assert uncovered(findings, [story]) == findings
    assert uncovered(findings, [make_item("a", summary=EXAMPLE, mentions_patient=True)]) == []
    assert fingerprint(draft) != fingerprint(Draft(channel="newsletter", item_ids=("a",), parts=("Hello",)))


def test_the_sample_practice_content_is_held_nowhere(tmp_path: Path) -> None:
    every_item = {name: {"max_items_per_run": 50} for name in ("newsletter", "x", "sms", "mastodon")}
    settings = load_settings(write_config(tmp_path, {"channels": every_item}))
    ledger = Ledger(settings.ledger_url())
    try:
        for source in settings.sources:
            pipeline.ingest(settings, ledger, source)
        outcomes = [outcome for name in settings.channels for outcome in pipeline.adapt(settings, ledger, name)]
    finally:
        ledger.close()
    assert [outcome.detail for outcome in outcomes if outcome.state == "held"] == []
    assert len(outcomes) >= 3  # James's story is refused where his authorization does not reach


# -- through the pipeline and the outbox ---------------------------------------------------------------------

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Oakview Physical Therapy Blog</title><link>https://www.oakviewpt.com/blog</link>
<description>News</description>
<item><title>{title}</title><link>https://www.oakviewpt.com/blog/john-smith</link>
<guid>https://www.oakviewpt.com/blog/john-smith</guid><pubDate>{date}</pubDate>
<description>{title}</description></item>
</channel></rss>
"""

STORY = """---
title: "{title}"
date: {date}
kind: recognition
url: /stories/john-smith
---
{title}
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    yesterday = now_utc() - timedelta(days=1)
    every_source = {"sources": None, "max_items_per_run": 10, "schedule": None}
    file = write_config(
        tmp_path,
        {
            "sources": {"blog": {"url": "samples/john-smith.xml"}},
            "channels": {name: dict(every_source) for name in ("newsletter", "x", "sms", "mastodon")},
        },
    )
    (file.parent / "samples" / "john-smith.xml").write_text(
        FEED.format(title=EXAMPLE, date=yesterday.strftime("%a, %d %b %Y %H:%M:%S +0000")), encoding="utf-8"
    )
    (file.parent / "content" / "john-smith.md").write_text(
        STORY.format(title=EXAMPLE, date=yesterday.date().isoformat()), encoding="utf-8"
    )
    return load_settings(file)


#: The ledger of ``settings`` (a fixture).
ledger = test_pipeline.ledger


def run(settings: Settings, ledger: Ledger) -> list[pipeline.Outcome]:
    """Ingest every source, then adapt and publish every channel (tests/test_pipeline.py)."""
    return test_pipeline.run(settings, ledger)[1]


def outbox_text(settings: Settings) -> str:
    texts = []
    for path in sorted(settings.path(settings.outbox).rglob("*.*")):
        if path.suffix == ".eml":
            message = BytesParser(policy=policy.default).parse(path.open("rb"))
            texts.append(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
        else:
            texts.append(path.read_text(encoding="utf-8"))
    return "\n".join(texts)


PHI_ITEMS = {"rss:blog:https://www.oakviewpt.com/blog/john-smith", "md:stories:john-smith"}


def test_the_example_is_held_on_every_channel_and_published_once_released(settings: Settings, ledger: Ledger) -> None:
    outcomes = run(settings, ledger)
    held = [outcome for outcome in outcomes if outcome.state == "held"]
    for channel in ("newsletter", "x", "sms", "mastodon"):
        mine = [outcome for outcome in held if outcome.channel == channel]
        assert mine
        assert all('"John Smith" near "ACL"' in outcome.detail for outcome in mine)
    held_items = {item for outcome in held for item in outcome.item_ids if outcome.channel in ("x", "mastodon")}
    assert held_items == PHI_ITEMS
    assert "John Smith" not in outbox_text(settings)
    # Still held, nothing sent; staff were told once, not at every run (again when a slot comes).
    assert [o for o in run(settings, ledger) if o.state in ("held", "published")] == []
    assert "John Smith" not in outbox_text(settings)

    drafts = ledger.drafts(states=["held"])
    # LinkedIn's too (the sample reviews it: a release is the staff's decision, so it is published below).
    assert {draft.channel for draft in drafts} == {"newsletter", "x", "sms", "mastodon", "linkedin"}
    with pytest.raises(LedgerError, match="held for possible PHI"):
        ledger.set_draft_state(drafts[0].id, "approved")
    with pytest.raises(LedgerError, match="needs a reason"):
        ledger.release(drafts[0].id, " ", "Front desk")
    first, *rest = drafts
    assert main(["release", str(first.id), "--reason", "AUTH-2026-0199 on file", "--by", "Jo", "--config",
                 str(settings.file)]) == 0  # fmt: skip
    for draft in rest:
        ledger.release(draft.id, "authorization AUTH-2026-0199 signed today", "Front desk")

    published = [outcome for outcome in run(settings, ledger) if outcome.state == "published"]
    assert {outcome.channel for outcome in published} == {"newsletter", "x", "sms", "mastodon", "linkedin"}
    assert outbox_text(settings).count("John Smith") >= 4
    [hold] = ledger.holds(first.id)
    assert (hold.released_by, hold.release_reason) == ("Jo", "AUTH-2026-0199 on file")
    assert hold.released_at is not None and hold.findings[0].person == "John Smith"
    assert [outcome for outcome in run(settings, ledger) if outcome.state in ("published", "held")] == []


def test_an_edit_is_checked_again(settings: Settings, ledger: Ledger) -> None:
    run(settings, ledger)
    [held] = [
        draft for draft in ledger.drafts("x", states=["held"]) if draft.draft.item_ids == ("md:stories:john-smith",)
    ]
    still = pipeline.decide(settings, ledger, held.id, approve=True, text="John Smith had ACL surgery. Welcome back!")
    assert still.state == "held" and ledger.draft(held.id).state == "held"
    fixed = pipeline.decide(settings, ledger, held.id, approve=True, text="Congrats to our weekend league players!")
    assert fixed.state == "approved" and ledger.draft(held.id).state == "approved"
    assert [o.state for o in pipeline.publish(settings, ledger, "x") if o.item_ids == held.draft.item_ids] == [
        "published"
    ]


def test_a_covering_authorization_for_that_patient_passes(settings: Settings, ledger: Ledger) -> None:
    story = settings.path(settings.sources["stories"].path) / "john-smith.md"  # type: ignore[union-attr]
    story.write_text(
        story.read_text().replace(
            "kind: recognition\n",
            "kind: recognition\nmentions_patient: true\nauthorization:\n  channels: [newsletter]\n"
            "  signed: 2026-01-05\n  expires: 2099-01-05\n  reference: AUTH-2026-0199\n  patient: John Smith\n",
        )
    )
    outcomes = [outcome for outcome in run(settings, ledger) if "md:stories:john-smith" in outcome.item_ids]
    assert {(outcome.channel, outcome.state) for outcome in outcomes if outcome.channel != "newsletter"} == {
        ("x", "rejected"),
        ("sms", "rejected"),
        ("mastodon", "rejected"),
    }
    assert ledger.known_patients() == ["John Smith"]
    # His authorization covers the newsletter: the digest naming him goes out.
    assert [draft.state for draft in ledger.drafts("newsletter")] == ["approved"]
    assert ("newsletter", "published") in {(outcome.channel, outcome.state) for outcome in outcomes}
