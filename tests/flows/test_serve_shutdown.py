"""``carecast serve`` stopped with SIGTERM (Ctrl-C of ``make serve``) while a publish run is texting: the text in
hand is finished and recorded, the rest is left for the next run, the run ends Failed saying so and the practice is
notified once; the next run texts the others, so nobody is lost and nobody gets it twice. Killed (SIGKILL), serve
leaves its run to finish on its own: it ends Completed, with no false crash alert.

Against the session's ``prefect server`` and a ``carecast serve`` of a practice of each test's own ("Harbor PT",
"Cove PT"), whose SMS channel texts through a Twilio fake that takes a second per message.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from carecast import pipeline
from carecast.channel import STOPPED
from carecast.practice import open_practice
from tests.conftest import write_config
from tests.flows.conftest import Webhook
from tests.flows.test_resume import _in_window_now
from tests.prefect_server import PrefectServer, start_carecast_serve, wait_for
from tests.providers import RecordedRequest, Reply
from tests.providers.twilio import TwilioServer
from tests.test_live_run import ENV, SMS_RECIPIENTS, TWILIO

pytestmark = pytest.mark.prefect


class SlowTwilio(TwilioServer):
    """Twilio taking a second to accept each message, so a run is mid-batch for seconds."""

    def finish(self, request: RecordedRequest, reply: Reply) -> Reply:
        if request.method == "POST" and request.path.endswith("/Messages.json"):
            time.sleep(1.0)
        return super().finish(request, reply)


@dataclass
class Harbor:
    """The practice: its config, its slow Twilio, and the environment its ``carecast serve`` runs in."""

    slug: str
    config: Path
    twilio: SlowTwilio
    server: PrefectServer


@pytest.fixture
def harbor(
    request: pytest.FixtureRequest,
    prefect_server: PrefectServer,
    webhook: Webhook,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Harbor]:
    """Its items read (the run only adapts and publishes); SMS on no schedule, the other channels off. Named
    ``request.param`` (a stopped serve pauses its deployments: each test serves a practice of its own)."""
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", ENV["TWILIO_AUTH_TOKEN"])
    with SlowTwilio(credentials=TWILIO) as twilio:
        credentials = {"account_sid": TWILIO.account_sid, "auth_token": {"env": "TWILIO_AUTH_TOKEN"}}
        off = {"enabled": False}
        config = write_config(
            tmp_path,
            {
                "practice": {"name": f"{request.param} Physical Therapy", "short_name": f"{request.param} PT"},
                "notify": {"webhook": webhook[0], "allow_private": True},
                "channels": {
                    "sms": {"schedule": [], "credentials": {**credentials, "api_base": twilio.url}},
                    "newsletter": off,
                    "x": off,
                    "mastodon": off,
                },
            },
        )
        _in_window_now(config.parent / "audience" / "sms.csv")
        with open_practice(config) as practice:
            pipeline.sync_audience(practice.settings, practice.ledger)
            for source in practice.settings.sources:
                pipeline.ingest(practice.settings, practice.ledger, source)
        env = {**prefect_server.env, "TWILIO_AUTH_TOKEN": ENV["TWILIO_AUTH_TOKEN"]}
        yield Harbor(request.param.lower(), config, twilio, PrefectServer(env, prefect_server.process))


def stop_serve_mid_batch(harbor: Harbor, how: signal.Signals) -> str:
    """Start a publish run through ``carecast serve``, send ``how`` to serve after two texts; the run's id."""
    with start_carecast_serve(harbor.config, harbor.server) as serve:
        form = harbor.server.api.deployment("resolve", f"{harbor.slug}-pt-resolve")["parameter_openapi_schema"]
        assert form["properties"]["decision"]["enum"] == ["sent", "resend", "drop"]
        run_id = harbor.server.api.start("publish", f"{harbor.slug}-pt-sms")
        wait_for("two texts", lambda: len(harbor.twilio.messages) >= 2, 120, serve)
        serve.send_signal(how)
        try:
            serve.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"carecast serve did not stop within 90 s of {how.name}")
    return run_id


@pytest.mark.parametrize("harbor", ["Harbor"], indirect=True)
def test_serve_stopped_mid_send_loses_nothing_and_says_what_was_left(harbor: Harbor, webhook: Webhook) -> None:
    run_id = stop_serve_mid_batch(harbor, signal.SIGTERM)
    assert 2 <= len(harbor.twilio.messages) < len(SMS_RECIPIENTS), "stopped mid-batch"
    wait_for("the run's final state", lambda: _final(harbor.server, run_id), 60)
    # The run ends Failed saying what was left; Prefect's runner may then mark it Cancelled (it asked it to stop).
    history = harbor.server.api("GET", f"/flow_run_states/?flow_run_id={run_id}")
    assert any(s["type"] == "FAILED" and STOPPED in (s["message"] or "") for s in history), history
    about_run = wait_for("the notification", lambda: _about(webhook, run_id), 60)
    time.sleep(5)  # a second one would be there by now
    assert len(_about(webhook, run_id)) == 1
    assert STOPPED in about_run[0]["reason"] and "left for the next run" in about_run[0]["reason"]
    # What did go out is said, not "0 posts ... 0 not sent".
    assert f"(after {len(harbor.twilio.messages)} sent)" in about_run[0]["reason"], about_run[0]["reason"]
    assert not any((s["message"] or "").startswith("0 not sent") for s in history), history

    with open_practice(harbor.config) as practice:
        [publication] = practice.ledger.publications()
        deliveries = practice.ledger.deliveries(publication.id)
        assert "claimed" not in {d.state for d in deliveries.values()}, "the text in hand was recorded"
        assert (publication.state, publication.transient) == ("failed", True)
        outcomes = pipeline.publish(practice.settings, practice.ledger, "sms")
    assert [outcome.state for outcome in outcomes] == ["published"]
    assert Counter(message["to"] for message in harbor.twilio.messages) == dict.fromkeys(SMS_RECIPIENTS, 1)


@pytest.mark.parametrize("harbor", ["Cove"], indirect=True)
def test_serve_killed_mid_send_lets_the_run_finish_without_a_false_crash_alert(
    harbor: Harbor, webhook: Webhook
) -> None:
    run_id = stop_serve_mid_batch(harbor, signal.SIGKILL)
    state = wait_for("the run's final state", lambda: _final(harbor.server, run_id), 120)
    assert state["type"] == "COMPLETED", state
    assert Counter(message["to"] for message in harbor.twilio.messages) == dict.fromkeys(SMS_RECIPIENTS, 1)
    time.sleep(5)  # an alert would be there by now
    assert _about(webhook, run_id) == []


def _final(server: PrefectServer, run_id: str) -> dict[str, object] | None:
    state = server.api.flow_run(run_id)["state"]
    return dict(state) if state["type"] in ("FAILED", "CRASHED", "CANCELLED", "COMPLETED") else None


def _about(webhook: Webhook, run_id: str) -> list[dict[str, object]]:
    return [payload for payload in webhook[1] if payload["flow_run_id"] == run_id]
