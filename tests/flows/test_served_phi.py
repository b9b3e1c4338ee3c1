"""A draft held for possible PHI through the Prefect approval form: highlighted in its preview artifact and the
form, published once released there with a reason and a name (a real ``prefect server`` and ``carecast serve``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from carecast.ledger import Ledger
from carecast.model import now_utc
from carecast.practice import load_settings
from tests.conftest import write_config
from tests.prefect_server import Api, PrefectServer, start_carecast_serve
from tests.test_phi import EXAMPLE, FEED

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def practice(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The sample practice, renamed (deployment names are the session server's, shared by the modules), posting its
    blog (one item: the PHI example) on X only, under review, on no schedule."""
    others = {name: {"enabled": False} for name in ("newsletter", "sms", "mastodon")}
    config = write_config(
        tmp_path_factory.mktemp("served-phi"),
        {
            "practice": {"short_name": "Maple PT"},
            "sources": {"blog": {"url": "samples/john-smith.xml"}},
            "channels": {"x": {"approval": "review", "schedule": [], "sources": ["blog"]}, **others},
        },
    )
    published = (now_utc() - timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    (config.parent / "samples" / "john-smith.xml").write_text(FEED.format(title=EXAMPLE, date=published))
    with start_carecast_serve(config, prefect_server):
        yield config


def test_a_held_draft_is_released_in_the_approval_form_and_published(api: Api, practice: Path) -> None:
    # A new hold is told at once through the failure route: the ingest run that drafted it ends Failed.
    ingest = api.finished(api.start("ingest", "maple-pt-sources"), "FAILED")
    assert "HELD, possible PHI" in ingest["message"]
    ledger = Ledger(load_settings(practice).ledger_url())
    [held] = ledger.drafts("x", states=["held"])
    run_id = api.start("publish", "maple-pt-x")
    api.finished(run_id, "PAUSED")
    [preview] = [a for a in api.artifacts(run_id) if a["key"] == f"maple-pt-draft-{held.id}"]
    assert "Held: possible PHI" in preview["data"] and "**⟦John Smith⟧**" in preview["data"]
    # What the Resume form shows: the schema Prefect stored for the suspended run.
    keyset = api.flow_run(run_id)["state"]["state_details"]["run_input_keyset"]
    schema = api("GET", f"/flow_runs/{run_id}/input/{keyset['schema']}")
    field = (json.loads(schema) if isinstance(schema, str) else schema)["properties"][f"draft_{held.id}"]
    assert field["title"].startswith("HELD, possible PHI") and '"John Smith" near "ACL"' in field["description"]

    decision = {"decision": "approve", "text": held.draft.parts[0], "reason": "AUTH-2026-0199 on file", "by": "Jo"}
    api("POST", f"/flow_runs/{run_id}/resume", {"run_input": {f"draft_{held.id}": decision}})
    api.finished(run_id)
    assert api.flow_run(run_id)["name"] == "publish x: 1 post"
    [hold] = ledger.holds(held.id)
    assert (hold.released_by, hold.release_reason) == ("Jo", "AUTH-2026-0199 on file")
    outbox = load_settings(practice).path("../.carecast/outbox") / "x"
    assert ["John Smith" in path.read_text() for path in outbox.glob("*.json")] == [True]
    ledger.close()
