"""A failed run of a served deployment is reported by the server's automation, once, naming practice, channel and
reason: a run that fails in its process (whose hook stays silent), and a suspension for approval that the server
fails when it times out (no process is left to run a hook).

Against the session's ``prefect server`` (tests/flows/conftest.py) and a ``carecast serve`` of its own practice,
"Lakeside PT", whose ``notify.webhook`` is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carecast.model import now_utc
from carecast.practice import load_settings
from tests.conftest import write_config
from tests.flows.conftest import Webhook
from tests.prefect_server import Api, PrefectServer, start_carecast_serve, wait_for

pytestmark = pytest.mark.prefect

PRACTICE = "Lakeside Physical Therapy"
#: How long the automation may take to POST after the run failed.
DELIVERY = 60.0
#: How long to wait after that POST for a second one (a hook that should have stayed silent).
QUIET = 5.0


@pytest.fixture(scope="module")
def practice(
    prefect_server: PrefectServer, module_webhook: Webhook, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The sample practice renamed, with X under review and on no schedule, and a webhook; served."""
    url, _ = module_webhook
    config = write_config(
        tmp_path_factory.mktemp("served-notify"),
        {
            "practice": {"name": PRACTICE, "short_name": "Lakeside PT"},
            "channels": {"x": {"approval": "review", "schedule": []}},
            "notify": {"webhook": url, "allow_private": True},
        },
    )
    with start_carecast_serve(config, prefect_server):
        yield config


def reported(received: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """The POSTs about ``run_id``, once the first arrived and a quiet spell passed (so a second would be there too).

    Raises NotReached when none arrives within :data:`DELIVERY` seconds.
    """

    def about_run() -> list[dict[str, Any]]:
        return [payload for payload in received if payload["flow_run_id"] == run_id]

    wait_for(f"a POST about run {run_id}", about_run, DELIVERY)
    time.sleep(QUIET)
    return about_run()


def test_serving_registers_one_automation_and_keeps_the_address_secret(
    api: Api, practice: Path, module_webhook: Webhook, prefect_server: PrefectServer
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from carecast_flows.deployments import practice_tag
    from carecast_flows.notify import automation_name, watch_deployments

    url, _ = module_webhook
    name = automation_name("lakeside-pt")
    (automation,) = api("POST", "/automations/filter", {"automations": {"name": {"any_": [name]}}})
    assert automation["enabled"] and automation["actions"][0]["type"] == "call-webhook"
    settings = load_settings(practice)
    with temporary_settings({PREFECT_API_URL: api.url}):  # serving again updates it in place
        assert str(watch_deployments(settings, practice_tag(settings))) == automation["id"]
    assert len(api("POST", "/automations/filter", {"automations": {"name": {"any_": [name]}}})) == 1
    path = "/block_types/slug/webhook/block_documents/name/carecast-lakeside-pt-notify"
    # The URL is stored (the server reveals it only when asked for secrets), and shown nowhere else.
    assert url in str(api("GET", f"{path}?include_secrets=true"))
    assert url not in str(api("GET", path)) and url not in str(automation)


def test_a_deployment_run_that_fails_is_reported_once_by_the_automation(
    api: Api, practice: Path, module_webhook: Webhook
) -> None:
    _, received = module_webhook
    deployment = api.deployment("publish", "lakeside-pt-x")
    run = api("POST", f"/deployments/{deployment['id']}/create_flow_run", {"parameters": {"channels": ["fax"]}})
    api.finished(run["id"], "FAILED")
    (payload,) = reported(received, run["id"])
    assert payload["practice"] == PRACTICE and payload["deployment"] == "lakeside-pt-x"
    assert payload["channels"] == ["fax"] and payload["state"] == "FAILED" and "fax" in payload["reason"]
    assert payload["flow"] == "publish" and payload["flow_run"] == api.flow_run(run["id"])["name"]
    assert PRACTICE in payload["text"] and "fax" in payload["text"]


def test_a_suspension_for_approval_that_times_out_is_reported(
    api: Api, practice: Path, module_webhook: Webhook
) -> None:
    _, received = module_webhook
    api.finished(api.start("ingest", "lakeside-pt-sources"))
    run_id = api.start("publish", "lakeside-pt-x")
    suspended = api.finished(run_id, "PAUSED")
    assert suspended["name"] == "Suspended"
    # An unscheduled channel waits a day: move the deadline to the past, and the server's pause expiration service
    # fails the run as it would tomorrow.
    details = {**suspended["state_details"], "pause_timeout": (now_utc() - timedelta(seconds=1)).isoformat()}
    api(
        "POST",
        f"/flow_runs/{run_id}/set_state",
        {"state": {"type": "PAUSED", "name": "Suspended", "state_details": details}, "force": True},
    )
    failed = api.finished(run_id, "FAILED")
    (payload,) = reported(received, run_id)
    assert payload["practice"] == PRACTICE and payload["channels"] == ["x"] and payload["state"] == "FAILED"
    assert payload["reason"] == failed["message"] == "The flow was paused and never resumed."
