"""Racing runs agree: 5 processes run the whole pipeline at once on one fresh ledger (SQLite and PostgreSQL),
20 rounds. The ledger is created by the racers themselves (migrations under a lock), every insert that can race
is an upsert, and every send is claimed first: each recipient gets each message once (counted at the provider
servers), nothing raises, and every racer finishes with nothing failed.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import Counter
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from carecast import pipeline
from carecast.cli import NOT_DONE
from carecast.ledger import open_ledger
from carecast.practice import load_settings
from tests.conftest import fresh_ledger, write_config
from tests.providers.smtp import SmtpServer
from tests.providers.twilio import TwilioServer
from tests.test_live_run import ALL_OPEN, ENV, SMS_RECIPIENTS, TWILIO

# 100 racing runs a dialect: about 5 minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

RACERS = 5
ROUNDS = 20
#: The newsletter's consenting subscribers in the sample audience.
NEWSLETTER_RECIPIENTS = 6


def racer(config: str, start: Barrier, errors: Any) -> None:
    """One run as ``carecast run`` makes it, started with the others; what went wrong goes to ``errors``."""
    try:
        settings = load_settings(Path(config))
        ledger = open_ledger(settings)
        start.wait(timeout=60)
        pipeline.sync_audience(settings, ledger)
        outcomes = []
        for source in settings.sources:
            report = pipeline.ingest(settings, ledger, source)
            assert report.error is None, report.error
        for channel in pipeline.channel_names(settings):
            outcomes += pipeline.adapt(settings, ledger, channel)
            outcomes += pipeline.publish(settings, ledger, channel, now=ALL_OPEN)
        ledger.close()
        failed = [f"{o.channel}: {o.state}: {o.detail}" for o in outcomes if o.state in NOT_DONE]
        if failed:
            errors.put("; ".join(failed))
    except BaseException:
        errors.put(traceback.format_exc())
        raise


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_racing_runs_send_everything_once_and_never_fail(
    dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in ENV.items():
        monkeypatch.setenv(variable, value)
    context = multiprocessing.get_context("fork")  # the parent has imported everything: each racer starts at once
    with TwilioServer(credentials=TWILIO) as twilio, SmtpServer(password=ENV["CARECAST_SMTP_PASSWORD"]) as smtp:
        channels = {
            "sms": {
                "credentials": {
                    "account_sid": TWILIO.account_sid,
                    "auth_token": {"env": "TWILIO_AUTH_TOKEN"},
                    "api_base": twilio.url,
                },
                "rate": "100/s",  # what races is the claims, not the pace (a long code's default is 1/s)
            },
            "newsletter": {
                "credentials": {
                    "host": smtp.host,
                    "port": smtp.port,
                    "security": "none",
                    "username": smtp.username,
                    "password": {"env": "CARECAST_SMTP_PASSWORD"},
                },
                "unsubscribe_secret": {"env": "CARECAST_UNSUBSCRIBE_SECRET"},
            },
        }
        for number in range(1, ROUNDS + 1):
            folder = tmp_path / f"round-{number}"
            with fresh_ledger(dialect, folder) as url:
                config = write_config(folder, {"channels": channels, "ledger": {"url": url}})
                start, errors = context.Barrier(RACERS), context.Queue()
                racers = [context.Process(target=racer, args=(str(config), start, errors)) for _ in range(RACERS)]
                for process in racers:
                    process.start()
                for process in racers:
                    process.join(timeout=120)
                reported = []
                while not errors.empty():
                    reported.append(errors.get())
                assert reported == [], f"round {number}: {reported[0]}"
                assert [process.exitcode for process in racers] == [0] * RACERS, f"round {number}"
            # A fresh ledger each round sends everything again: once per round, never more.
            assert Counter(message["to"] for message in twilio.messages) == dict.fromkeys(SMS_RECIPIENTS, number)
            mailed = Counter(to for message in smtp.messages for to in message.rcpt_tos)
            assert len(mailed) == NEWSLETTER_RECIPIENTS and set(mailed.values()) == {number}, f"round {number}"
            outbox = folder / ".carecast" / "outbox"
            published = Counter(file.parent.name for file in outbox.glob("*/*.json"))
            # The reactivation text goes to the outbox: the racers point only the sample's "sms" at Twilio.
            assert published == {"x": 3, "mastodon": 3, "reactivation-text": 1}, f"round {number}"
