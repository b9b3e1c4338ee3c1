"""A hold is never silent: the publish flow sends the newsletter without the held item, on time, and the hold
reaches the practice's webhook (the failure route) and the run's table artifact, with what was found and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carecast import pipeline
from carecast.ledger import Ledger
from carecast.practice import load_settings
from tests.conftest import write_config
from tests.flows.conftest import Webhook
from tests.test_phi_holds import PHI_STORY, feed

pytestmark = pytest.mark.prefect


def test_a_held_item_is_told_to_the_webhook_and_the_artifact_while_the_digest_goes_out(
    prefect_api: None, tmp_path: Path, webhook: Webhook
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from carecast_flows.artifacts import slug
    from carecast_flows.pipeline import publish

    url, received = webhook
    others = {name: {"enabled": False} for name in ("x", "sms", "mastodon")}
    config = write_config(
        tmp_path,
        {
            "notify": {"webhook": url, "allow_private": True},
            "sources": {"blog": {"url": "samples/phi.xml"}},
            "channels": {"newsletter": {"sources": ["blog"], "schedule": None}, **others},
        },
    )
    posts = [("stretches", "Five desk stretches", "Sitting all day?"), ("john", "Back on court", PHI_STORY)]
    (config.parent / "samples" / "phi.xml").write_text(feed(*posts))

    settings = load_settings(config)
    ledger = Ledger(settings.ledger_url())
    pipeline.ingest(settings, ledger, "blog")
    ledger.close()
    state = publish(practice=str(config), channels=["newsletter"], return_state=True)

    assert state.is_failed() and "HELD, possible PHI" in (state.message or "")
    rows = state.result(raise_on_failure=False)["outcomes"]  # type: ignore[index]
    assert [row["state"] for row in rows if row["state"] == "published"] == ["published"]
    [payload, *_] = received
    assert "HELD, possible PHI" in payload["reason"] and '"John Smith" near "ACL' in payload["reason"]
    with get_client(sync_client=True) as client:
        [table] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"{slug(settings)}-published"])), limit=1
        )
    data = table.data if isinstance(table.data, list) else json.loads(str(table.data))
    held = [row for row in data if row["state"] == "held"]
    assert held and '"John Smith" near "ACL' in held[0]["where / why"]
