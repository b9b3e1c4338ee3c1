"""A ``carecast run`` killed mid-send (SIGKILL, a real process) is resumed by the next run once its claim is stale.

Each test stalls a provider server on its k+1-th send (the request arrives but is never handled, as if it never
reached the provider), kills the run then, waits ``ledger.claim_timeout``, and runs again: every recipient or part
not in flight is sent exactly once, counted at the server. The one in flight is looked up where the provider can be
asked (Twilio's message list) and sent only if it is not there; elsewhere it is ``unknown`` in ``carecast status``
with its reason, the run exits 1 and notifies, and ``carecast resolve --resend`` has the next run send it, once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from carecast.ledger import IN_FLIGHT
from tests.conftest import write_config
from tests.flows.conftest import Webhook
from tests.prefect_server import BIN, PrefectServer
from tests.test_live_run import ENV, TWILIO, Providers, live_settings
from tests.test_live_run import providers as providers  # the fixture, shared

pytestmark = pytest.mark.prefect

#: Seconds a claim stays untouched before the next run takes its sender for dead: short, for the test.
CLAIM_TIMEOUT = 2.0
#: How long a ``carecast run`` may take here (a loaded CI machine).
RUN_TIMEOUT = 240.0


@dataclass
class Project:
    """A practice whose channels send to the local provider servers, and the ``carecast`` command run in it."""

    folder: Path
    config: Path
    env: dict[str, str]

    def carecast(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "carecast"), *args, "--config", str(self.config)],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )

    def run(self, channel: str) -> subprocess.CompletedProcess[str]:
        return self.carecast("run", "--channel", channel)

    def kill_run_when(self, channel: str, arrived: Callable[[], bool]) -> None:
        """Start ``carecast run --channel channel`` and SIGKILL it as soon as ``arrived()`` holds."""
        with (self.folder / "killed-run.log").open("w") as log:
            process = subprocess.Popen(
                [str(BIN / "carecast"), "run", "--channel", channel, "--config", str(self.config)],
                cwd=self.folder,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + RUN_TIMEOUT
            while not arrived():
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    log.flush()
                    pytest.fail(f"the run ended before it was killed:\n{(self.folder / 'killed-run.log').read_text()}")
                time.sleep(0.05)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        time.sleep(CLAIM_TIMEOUT + 0.5)  # its claim goes stale

    def unknown(self) -> list[tuple[int, dict[str, Any]]]:
        """Every unknown recipient or part in ``carecast status --json``, with its publication's id."""
        result = self.carecast("status", "--json")
        assert result.returncode == 0, result.stderr
        return [(record["id"], unknown) for record in json.loads(result.stdout) for unknown in record["unknown"]]


@pytest.fixture
def project(tmp_path: Path, providers: Providers, prefect_server: PrefectServer, webhook: Webhook) -> Project:
    config = live_settings(tmp_path, providers).file
    data = yaml.safe_load(config.read_text())
    data["ledger"] = {"claim_timeout": CLAIM_TIMEOUT}
    data["notify"] = {"webhook": webhook[0], "allow_private": True}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    _in_window_now(config.parent / "audience" / "sms.csv")
    env = {**prefect_server.env, **ENV, "PREFECT_HOME": str(tmp_path / "prefect")}
    return Project(tmp_path, config, env)


def _in_window_now(csv: Path) -> None:
    """Put every SMS recipient in a zone where it is 13:00 now, inside any quiet-hours window (the run's clock is
    the real one)."""
    offset = (13 - datetime.now(UTC).hour + 11) % 24 - 11  # -11 .. +12
    zone = "Etc/GMT" + (f"{-offset:+d}" if offset else "")  # Etc/GMT+5 is UTC-5
    lines = csv.read_text().splitlines()
    header = lines[0].split(",")
    assert header[-1] == "timezone"
    csv.write_text("\n".join([lines[0], *(line.rsplit(",", 1)[0] + f",{zone}" for line in lines[1:])]) + "\n")


def assert_failed_run_notified(webhook: Webhook, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert any(payload["state"] == "FAILED" and "unknown" in payload["reason"] for payload in webhook[1])


def test_sms_killed_mid_batch_resumes_and_the_text_in_flight_is_looked_up_at_twilio(
    project: Project, providers: Providers
) -> None:
    twilio, path = providers.twilio, f"/2010-04-01/Accounts/{TWILIO.account_sid}/Messages.json"
    twilio.stall(after=2, method="POST", path=path)
    project.kill_run_when("sms", lambda: len(twilio.requests_to("POST", path)) == 3)
    in_flight = twilio.requests_to("POST", path)[2].body["To"]
    assert len(twilio.messages) == 2
    twilio.stall(None)

    # The text in flight never reached Twilio: its message list says so, so the resumed run texts them, once.
    resumed = project.run("sms")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    texted = Counter(message["to"] for message in twilio.messages)
    assert len(texted) == 5 and set(texted.values()) == {1} and in_flight in texted
    assert [request.query["To"] for request in twilio.requests_to("GET", path)] == [in_flight]
    assert project.unknown() == []


def test_newsletter_killed_mid_batch_resumes_and_the_message_in_flight_waits_for_resolve(
    project: Project, providers: Providers, webhook: Webhook
) -> None:
    smtp = providers.smtp
    smtp.stall_data(after=3)
    project.kill_run_when("newsletter", lambda: smtp.data_commands == 4)
    assert len(smtp.messages) == 3
    smtp.stall_data(None)

    assert_failed_run_notified(webhook, project.run("newsletter"))
    mailed = Counter(to for message in smtp.messages for to in message.rcpt_tos)
    assert len(mailed) == 5 and set(mailed.values()) == {1}
    [(publication, unknown)] = project.unknown()
    assert unknown["reason"] == IN_FLIGHT and unknown["recipient"] not in mailed

    assert project.carecast("resolve", str(publication), "--resend").returncode == 0
    final = project.run("newsletter")
    assert final.returncode == 0, final.stdout + final.stderr
    mailed = Counter(to for message in smtp.messages for to in message.rcpt_tos)
    assert len(mailed) == 6 and set(mailed.values()) == {1}


def test_x_thread_killed_mid_thread_is_looked_up_on_the_timeline_and_keeps_its_chain(
    project: Project, providers: Providers
) -> None:
    x = providers.x
    x.stall(after=1, method="POST", path="/2/tweets")
    project.kill_run_when("x", lambda: len(x.requests_to("POST", "/2/tweets")) == 2)
    [first] = x.tweets
    x.stall(None)

    # Part 2 never reached X: the timeline says so, so the resumed run posts it and the rest of the thread, once.
    resumed = project.run("x")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert project.unknown() == []
    texts = Counter(tweet.text for tweet in x.tweets)
    assert set(texts.values()) == {1}, "no post twice"
    second = next(tweet for tweet in x.tweets if tweet.in_reply_to_tweet_id == first.id)
    third = next(tweet for tweet in x.tweets if tweet.in_reply_to_tweet_id == second.id)
    assert (first.text[:4], second.text[:4], third.text[:4]) == ("1/3 ", "2/3 ", "3/3 ")


def test_the_resolve_flow_settles_an_unknown_recipient_as_the_command_does(prefect_api: None, tmp_path: Path) -> None:
    from carecast.model import Draft
    from carecast.practice import open_practice
    from carecast_flows.resolve import resolve

    config = write_config(tmp_path)
    with open_practice(config) as practice:
        ledger = practice.ledger
        draft_id = ledger.save_draft(Draft(channel="sms", item_ids=(), parts=("hi",)), "default", "approved")
        publication = ledger.claim(draft_id)
        ledger.claim_delivery(publication, "+13125550117")
        ledger.resume_stale("sms", timedelta(seconds=-1))
        ledger.record_unknown(publication, "1 recipient unknown")
    summary = resolve(publication, "resend", recipient="+13125550117", practice=str(config))
    assert summary == f"publication {publication}: 1 settled (resend); the next run finishes it"
