"""A failed run without a deployment (``carecast run``) tells the practice's webhook (a real HTTP server on
127.0.0.1) the practice, channel and reason, through the flow's hook. Deployment runs are reported by the server's
automation instead: tests/flows/test_served_notify.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.exceptions import FailedRun

from carecast.alerts import NOTIFICATIONS
from carecast.practice import load_settings
from tests.conftest import write_config
from tests.flows.conftest import Webhook

pytestmark = pytest.mark.prefect


def test_a_failed_publish_run_notifies_the_webhook(prefect_api: None, tmp_path: Path, webhook: Webhook) -> None:
    from carecast_flows.pipeline import publish

    url, received = webhook
    config = write_config(tmp_path, {"notify": {"webhook": url, "allow_private": True}})
    # The run ends Failed with the reason in one line (no traceback), which is what calling the flow raises.
    with pytest.raises(FailedRun, match=r"channels\.fax: a configured channel \(newsletter, "):
        publish(practice=str(config), channels=["fax"])
    (payload,) = received
    assert payload["practice"] == "Oakview Physical Therapy"
    assert payload["channels"] == ["fax"] and payload["deployment"] is None
    assert payload["state"] == "FAILED" and "fax" in payload["reason"]
    assert "Oakview Physical Therapy" in payload["text"] and "fax" in payload["text"]


def test_without_a_webhook_a_failure_reaches_the_outbox_route(
    prefect_api: None, tmp_path: Path, webhook: Webhook
) -> None:
    from carecast_flows.pipeline import publish

    _, received = webhook
    config = write_config(tmp_path)
    with pytest.raises(FailedRun, match=r"channels\.fax"):
        publish(practice=str(config), channels=["fax"])
    assert received == []
    settings = load_settings(config)
    (notice,) = (settings.path(settings.outbox) / NOTIFICATIONS).glob("*.eml")
    text = notice.read_text()
    assert "To: hello@oakviewpt.com" in text and "publish run FAILED" in text and "channels.fax" in text


def test_carecast_run_with_a_failed_source_notifies_and_exits_1(
    prefect_api: None, tmp_path: Path, webhook: Webhook, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from carecast.cli import main

    url, received = webhook
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    down = {"url": f"http://127.0.0.1:{port}/feed.xml", "timeout": 2, "allow_private": True}
    config = write_config(tmp_path, {"notify": {"webhook": url, "allow_private": True}, "sources": {"blog": down}})
    assert main(["run", "--config", str(config), "--channel", "sms"]) == 1
    assert "FAILED" in capsys.readouterr().out, "the summary still shows what happened"
    (payload,) = received
    assert payload["state"] == "FAILED" and "source blog" in payload["reason"]
    # Nothing else to do and the source still down: the run still makes its flow run, whose failure is the alert.
    assert main(["run", "--config", str(config), "--channel", "sms"]) == 1
    assert "no flow run was started" not in capsys.readouterr().out
    assert len(received) == 2 and "source blog" in received[1]["reason"]


def test_a_credential_to_fix_fails_the_run_so_it_is_notified_though_it_is_retried() -> None:
    from carecast.channel import CREDENTIAL_TO_FIX
    from carecast_flows.pipeline import _finish

    fix = f"{CREDENTIAL_TO_FIX}: channels.x.credentials: X refused it (401 Unauthorized): fix it"
    rows = [
        {"state": "retry", "channel": "x", "title": "Desk tips", "detail": fix},
        {"state": "retry", "channel": "gbp", "title": "Desk tips", "detail": "429 RESOURCE_EXHAUSTED: rate limit"},
    ]

    state = _finish(rows, "1 to fix", {"rows": rows})

    assert not isinstance(state, dict) and state.is_failed()
    assert "channels.x.credentials" in str(state.message) and "gbp" not in str(state.message)
    assert _finish(rows[1:], "1 left for a later run", {"rows": rows[1:]}) == {"rows": rows[1:]}
