"""The ``review/<practice>`` deployment against a real ``prefect server`` and ``carecast serve``: started any time,
ahead of the slot, its run pauses with a form listing every draft waiting, held or refused with why; staff approve
one with an edit, reject one with a reason; the calendar, there since ``carecast serve`` started, shows the outcome;
the refusal reached the outbox route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carecast.alerts import NOTIFICATIONS
from carecast.ledger import Ledger
from carecast.practice import load_settings
from tests.conftest import write_config
from tests.prefect_server import Api, PrefectServer, start_carecast_serve

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def practice(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The sample practice (LinkedIn under review), renamed (deployment names are the session server's, shared by
    the modules), whose newsletter subject limit every digest breaks."""
    config = write_config(
        tmp_path_factory.mktemp("review"),
        {"practice": {"short_name": "Birch PT"}, "channels": {"newsletter": {"max_subject_length": 20}}},
    )
    with start_carecast_serve(config, prefect_server):
        yield config


def test_a_review_run_decides_ahead_of_the_slot_and_says_why(api: Api, practice: Path) -> None:
    settings = load_settings(practice)
    # The calendar is there before any other run: `carecast serve` made it as it started.
    made = api("POST", "/artifacts/latest/filter", {"artifacts": {"key": {"any_": ["birch-pt-calendar"]}}})
    assert [calendar["key"] for calendar in made] == ["birch-pt-calendar"]
    ingest = api.start("ingest", "birch-pt-sources")
    state = api.finished(ingest)
    assert "newsletter" in state["message"] and "subject" in state["message"]
    (notice,) = (settings.path(settings.outbox) / NOTIFICATIONS).glob("*.eml")
    assert "subject" in notice.read_text()

    run_id = api.start("review", "birch-pt")
    paused = api.finished(run_id, "PAUSED")
    assert paused["name"] == "Suspended"
    ledger = Ledger(settings.ledger_url())
    try:
        edited, rejected = ledger.drafts("linkedin", states=["pending"])
        run_input = {
            f"draft_{edited.id}": {"decision": "approve", "text": "Edited ahead of the slot."},
            f"draft_{rejected.id}": {"decision": "reject", "text": "", "reason": "not for physicians"},
        }
        api("POST", f"/flow_runs/{run_id}/resume", {"run_input": run_input})
        api.finished(run_id)
        assert api.flow_run(run_id)["name"] == "review: 1 approved, 1 rejected; 1 refused (see why)"
        approved = ledger.draft(edited.id)
        assert approved.state == "approved" and approved.draft.parts == ("Edited ahead of the slot.",)
        assert (ledger.draft(rejected.id).state, ledger.draft(rejected.id).reason) == (
            "rejected",
            "not for physicians",
        )
    finally:
        ledger.close()
    keys = {a["key"] for a in api.artifacts(run_id)}
    assert {f"birch-pt-draft-{edited.id}", "birch-pt-calendar"} <= keys
