"""The webhooks' setup and command: what the server needs to start (a channel to serve, its secrets), the check that
the config's callback URLs point at it, and ``carecast webhooks`` in a process of its own, served until Ctrl-C.
Shares the practice and its secrets of ``tests/test_webhooks.py``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from carecast.cli import main
from carecast.errors import ConfigError, CredentialError
from carecast.ledger import Ledger
from carecast.practice import load_settings
from carecast.webhooks import WebhookApp, check_urls
from tests.conftest import write_config
from tests.providers.twilio import twilio_signature
from tests.test_webhooks import AUTH_TOKEN, ENV, MARIA_SMS, PRACTICE, PUBLIC, configure, inbound, twiml_messages


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def test_it_needs_something_to_serve_and_its_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = load_settings(write_config(tmp_path / "bare"))
    with pytest.raises(ConfigError, match="an sms channel with credentials"):
        WebhookApp(bare, Ledger(f"sqlite:///{tmp_path / 'bare.db'}"))
    monkeypatch.delenv("CARECAST_TEST_UNSUBSCRIBE_SECRET")
    settings = configure(tmp_path / "practice")
    with pytest.raises(CredentialError, match="CARECAST_TEST_UNSUBSCRIBE_SECRET"):
        WebhookApp(settings, Ledger(f"sqlite:///{tmp_path / 'practice.db'}"))


def test_check_urls_names_callbacks_that_point_elsewhere(tmp_path: Path) -> None:
    settings = configure(tmp_path)
    assert check_urls(settings, PUBLIC + "/") == []
    assert check_urls(settings, "https://elsewhere.example") == [
        f"channels.newsletter.unsubscribe_url is {PUBLIC}/unsubscribe, not https://elsewhere.example/unsubscribe",
        f"channels.sms.status_callback is {PUBLIC}/twilio/status, not https://elsewhere.example/twilio/status",
    ]


# -- the command -----------------------------------------------------------------------------------------------


def test_the_command_refuses_to_start_without_its_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = configure(tmp_path).file
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    assert main(["webhooks", "--config", str(config), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "TWILIO_AUTH_TOKEN" in err and "is not set" in err


def start_webhooks(config: Path, cwd: Path, env: dict[str, str], *options: str) -> tuple[subprocess.Popen[str], str]:
    """``carecast webhooks`` on a free port in a process of its own, once it says where: the process (its stdout
    next lists the endpoints) and the local base URL."""
    command = [sys.executable, "-m", "carecast.cli", "webhooks", "--config", str(config), "--port", "0", *options]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    banner = process.stdout.readline()
    port = re.fullmatch(r"Serving on 127\.0\.0\.1:(\d+) \(Ctrl-C stops\):\n", banner)
    if port is None:
        process.kill()
        pytest.fail(banner + process.communicate(timeout=10)[1])
    return process, f"http://127.0.0.1:{port.group(1)}"


def test_the_command_serves_until_interrupted(tmp_path: Path) -> None:
    config = configure(tmp_path).file
    process, local = start_webhooks(config, tmp_path, {**os.environ, **ENV}, "--public-url", PUBLIC)
    try:
        assert process.stdout is not None
        endpoints = [process.stdout.readline().strip() for _ in range(3)]
        # Listed in the order the config names the channels that declare them.
        assert sorted(endpoints) == [
            f"GET/POST {PUBLIC}/unsubscribe",
            f"POST {PUBLIC}/twilio/inbound",
            f"POST {PUBLIC}/twilio/status",
        ]
        params = inbound("HELP")
        signature = twilio_signature(AUTH_TOKEN, f"{PUBLIC}/twilio/inbound", params)
        reply = requests.post(
            f"{local}/twilio/inbound",
            data=params,
            headers={"X-Twilio-Signature": signature},
            timeout=10,
        )
        assert twiml_messages(reply)[0].startswith(PRACTICE)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "POST /twilio/inbound 200" in err
    assert AUTH_TOKEN not in err and MARIA_SMS not in err
