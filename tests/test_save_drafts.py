"""``Ledger.save_drafts`` (one transaction for a whole adapt run) does what ``save_draft`` and ``hold`` do one
draft at a time, on real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carecast.ledger import Ledger
from carecast.ledger.holds import DraftSave
from carecast.model import Draft
from carecast.phi import Finding
from tests.test_ledger import draft, item


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    opened = Ledger(ledger_url)
    opened.upsert_items([item(n) for n in range(1, 6)])
    yield opened
    opened.close()


def edited(original: Draft, text: str) -> Draft:
    return Draft(channel=original.channel, item_ids=original.item_ids, parts=(text,))


FINDING = Finding("patient health", "part 1", ("Maria Gonzalez",), ((0, 14),), "Maria Gonzalez")


def test_save_drafts_as_save_draft_and_hold_would_one_at_a_time(ledger: Ledger) -> None:
    claimed = ledger.save_draft(draft(1), "@oak", "approved")
    ledger.claim(claimed)
    decided = ledger.save_draft(draft(2), "@oak", "pending")
    ledger.set_draft_state(decided, "rejected", "not this one")
    saved = ledger.save_drafts(
        "@oak",
        [
            DraftSave(edited(draft(1), "changed after the claim"), "approved"),
            DraftSave(edited(draft(2), "changed after staff rejected it"), "pending"),
            DraftSave(draft(3), "pending"),
            DraftSave(draft(4), "approved", hold=("text-4", [FINDING])),
            DraftSave(draft(5), "refused", reason="too long"),
            DraftSave(edited(draft(5), "mended"), "approved"),  # the same items again: it replaces the refusal
        ],
    )
    assert [(s.held, s.state) for s in saved] == [
        (False, "approved"),
        (False, "rejected"),
        (False, "pending"),
        (True, "held"),
        (False, "approved"),
        (False, "approved"),
    ]
    assert saved[0].id == claimed and saved[1].id == decided and saved[4].id == saved[5].id
    assert ledger.draft(claimed).draft.parts == ("hello",)  # what was claimed goes out as it was
    assert ledger.draft(saved[5].id).draft.parts == ("mended",)
    assert "Maria Gonzalez" in (ledger.draft(saved[3].id).reason or "")
    assert [hold.fingerprint for hold in ledger.holds(saved[3].id)] == ["text-4"]
