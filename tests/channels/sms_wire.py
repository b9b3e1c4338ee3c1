"""What the SMS tests on the wire share: the local TwilioServer's credentials, the sample audience's numbers, a
real local receiver of Twilio's signed status callbacks, a practice set up to text them, and the fixtures every such
test uses (the Auth Token in the environment; no log line of ours naming a recipient's number). A test module
imports the fixtures (pytest finds a fixture among the names a module holds).
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from carecast.channel import Outbox, PublishContext
from carecast.errors import ChannelError, PublishError
from carecast.ledger import Ledger
from carecast.model import Draft, content_hash
from carecast.pipeline import make_channel, sync_audience
from carecast.practice import load_settings
from carecast_channels.sms import SmsChannel
from tests.channels.conftest import naming_any, our_log_lines, sample_addresses
from tests.conftest import write_config
from tests.factories import make_observance
from tests.providers.twilio import TwilioCredentials, TwilioServer

TOKEN = "tok-7f3a9c1e5b2d4f6a8c0e2b4d6f8a0c1e"
CREDENTIALS = TwilioCredentials(auth_token=TOKEN)
MESSAGES = f"/2010-04-01/Accounts/{CREDENTIALS.account_sid}/Messages.json"
CONSENTING = {"+13055550164", "+13125550117", "+14155550176", "+16305550142", "+17735550123"}
#: Monday 2026-02-02 17:00 UTC: 11:00 in Chicago, 12:00 in New York, 09:00 in Los Angeles: everyone's window is open.
OPEN = datetime(2026, 2, 2, 17, 0, tzinfo=UTC)
AUDIENCE = sample_addresses("sms")


class CallbackReceiver:
    """A local HTTP endpoint for Twilio's status callbacks: each POST goes to the channel, 403 when refused."""

    def __init__(self) -> None:
        self.channel: SmsChannel | None = None
        self.ledger: Ledger | None = None
        self.refused: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                params = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                url = f"{receiver.base}{self.path}"
                assert receiver.channel is not None and receiver.ledger is not None
                try:
                    receiver.channel.apply_status_callback(
                        receiver.ledger, url, params, self.headers.get("X-Twilio-Signature", "")
                    )
                except ChannelError as exc:
                    receiver.refused.append(str(exc))
                    self.send_response(403)
                else:
                    self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.base}/twilio/status"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[CallbackReceiver]:
    callbacks = CallbackReceiver()
    yield callbacks
    callbacks.stop()


class Setup:
    """A practice whose SMS channel has Twilio credentials pointing at ``server``, its audience in the ledger."""

    def __init__(self, tmp_path: Path, server: TwilioServer, receiver: CallbackReceiver, **sms: Any) -> None:
        credentials = {"account_sid": CREDENTIALS.account_sid, "auth_token": {"env": "TWILIO_AUTH_TOKEN"}}
        changes = {"credentials": {**credentials, "api_base": server.url}, "status_callback": receiver.url, **sms}
        self.settings = load_settings(write_config(tmp_path, {"channels": {"sms": changes}}))
        channel = make_channel(self.settings, "sms")
        assert isinstance(channel, SmsChannel)
        self.channel = channel
        self.ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        self.outbox = Outbox(tmp_path / "outbox")
        sync_audience(self.settings, self.ledger)
        receiver.channel, receiver.ledger = self.channel, self.ledger

    def draft(self, summary: str = "Happy Patient Recognition Week! Thank you for trusting us.") -> Draft:
        item = make_observance(f"observance-{content_hash(summary)[:8]}", summary=summary)
        self.ledger.upsert_items([item])
        return self.channel.render([item])

    def claim(self, draft: Draft, now: datetime = OPEN, *, delivery_chunk: int = 1) -> PublishContext:
        """Claim ``draft`` as the pipeline does: the first time, or again after a transient failure; its recipients
        are claimed ``delivery_chunk`` at a time (``ledger.delivery_chunk``)."""
        draft_id = self.ledger.save_draft(draft, self.channel.config.account, "approved")
        return PublishContext(
            self.ledger.claim(draft_id), self.outbox, self.ledger, now=now, delivery_chunk=delivery_chunk
        )

    def retry(self, context: PublishContext, error: PublishError, now: datetime) -> PublishContext:
        """What the next run does with a transient failure: record it, claim the publication again (same id)."""
        assert error.transient
        self.ledger.record_failed(context.publication_id, error.reason, transient=True)
        [publication] = [p for p in self.ledger.publications() if p.id == context.publication_id]
        stored = next(d for d in self.ledger.drafts("sms") if d.draft.item_ids == tuple(publication.item_ids))
        return PublishContext(self.ledger.claim(stored.id), self.outbox, self.ledger, now=now)


def sent_forms(server: TwilioServer) -> list[dict[str, str]]:
    return [request.body for request in server.requests_to("POST", MESSAGES)]


@pytest.fixture(autouse=True)
def auth_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)


@pytest.fixture(autouse=True)
def no_number_in_our_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a scenario does, no log line of ours names a recipient's number."""
    caplog.set_level(logging.DEBUG)
    yield
    assert naming_any(our_log_lines(caplog), AUDIENCE) == []
