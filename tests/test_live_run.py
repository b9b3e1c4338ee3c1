"""A live run of the sample config against all four provider servers at once, through the real pipeline.

Every channel has credentials, named in the config by ``{env: ...}`` reference and pointed at a local server: the
newsletter at an SMTP server (STARTTLS), X at the X API fake (``api_base``), Mastodon at mastodon-mock, SMS at the
Twilio fake. What the tests assert is what arrived on the wire: one newsletter per consenting subscriber, X posts
with a 3-part reply chain, Mastodon statuses, one text per consenting recipient inside their window; a second run
sends nothing; no secret is in any log line, outcome, ledger or outbox file; nothing leaves 127.0.0.1.

The sample audience: 6 of 10 newsletter subscribers and 5 of 9 SMS recipients may be reached (the others are
unsubscribed, bounced, opted out, or have no consent on file).
"""

from __future__ import annotations

import io
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import PIL.Image
import pytest
import requests

from carecast import pipeline
from carecast.config import Settings
from carecast.ledger import Ledger
from carecast.practice import load_settings
from tests.conftest import write_config
from tests.factories import NEWSLETTER_RECIPIENTS
from tests.providers import LocalHttpServer, RecordedRequest, Reply
from tests.providers.mastodon import MastodonInstance, mastodon_instance
from tests.providers.smtp import SmtpServer
from tests.providers.twilio import TwilioCredentials, TwilioServer
from tests.providers.xapi import XApiServer, XCredentials

# Distinct values, so a leak of any of them anywhere is found by a plain substring search.
SMTP_PASSWORD = "smtp-pw-3e9d71-leak-canary"
UNSUBSCRIBE_SECRET = "unsub-hmac-a41f0c-leak-canary"
MASTODON_TOKEN = "masto-5b2e88-leak-canary"
X_SECRETS = XCredentials(
    consumer_key="ck-61d0f2-leak-canary",
    consumer_secret="cs-8a47e3-leak-canary",
    access_token="1000000001-at-c39b57-leak-canary",
    access_token_secret="ats-0e5f9d-leak-canary",
)
TWILIO = TwilioCredentials(auth_token="tw-7c2a64-leak-canary")
ENV = {
    "CARECAST_SMTP_PASSWORD": SMTP_PASSWORD,
    "CARECAST_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET,
    "MASTODON_ACCESS_TOKEN": MASTODON_TOKEN,
    "TWILIO_AUTH_TOKEN": TWILIO.auth_token,
    "X_CONSUMER_KEY": X_SECRETS.consumer_key,
    "X_CONSUMER_SECRET": X_SECRETS.consumer_secret,
    "X_ACCESS_TOKEN": X_SECRETS.access_token,
    "X_ACCESS_TOKEN_SECRET": X_SECRETS.access_token_secret,
}

#: New York, Chicago (twice: one by its CSV zone, one by its area code), Los Angeles, Chicago.
SMS_RECIPIENTS = ["+13055550164", "+13125550117", "+14155550176", "+16305550142", "+17735550123"]
LOS_ANGELES = "+14155550176"
#: Tuesday 2026-12-01 17:00 UTC: 11:00 in Chicago, 12:00 in New York, 09:00 in Los Angeles: every window is open.
ALL_OPEN = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
#: 15:30 UTC the same day: 09:30 in Chicago, 10:30 in New York, but 07:30 in Los Angeles, before its 08:00.
LA_CLOSED = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)


def _photo() -> bytes:
    stream = io.BytesIO()
    PIL.Image.new("RGB", (640, 400), (29, 78, 99)).save(stream, "PNG")
    return stream.getvalue()


#: A real 640 x 400 PNG, served for every image an item names (X checks an image's real type and size).
PNG = _photo()


class Images(LocalHttpServer):
    """The practice's web server, for the item images X uploads: a PNG at every path under ``/images/``."""

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path.startswith("/images/"):
            return Reply(200, PNG, {"Content-Type": "image/png"})
        return Reply(404, "not found")


@dataclass
class Providers:
    smtp: SmtpServer
    x: XApiServer
    mastodon: MastodonInstance
    twilio: TwilioServer
    images: Images

    def statuses(self) -> list[dict[str, Any]]:
        """The practice account's statuses on the instance, newest first."""
        headers = self.mastodon.auth_headers()
        me = requests.get(f"{self.mastodon.url}/api/v1/accounts/verify_credentials", headers=headers, timeout=5)
        url = f"{self.mastodon.url}/api/v1/accounts/{me.json()['id']}/statuses"
        return list(requests.get(url, headers=headers, timeout=5).json())

    def sent(self) -> dict[str, int]:
        """How much each server took in: the counts a second run must leave as they are."""
        return {
            "smtp connections": self.smtp.connections,
            "emails": len(self.smtp.messages),
            "x requests": len(self.x.requests),
            "tweets": len(self.x.tweets),
            "statuses": len(self.statuses()),
            "twilio requests": len(self.twilio.requests),
            "texts": len(self.twilio.messages),
        }


@pytest.fixture
def providers(tmp_path: Path) -> Iterator[Providers]:
    with ExitStack() as stack:
        yield Providers(
            smtp=stack.enter_context(SmtpServer(password=SMTP_PASSWORD, starttls=True, cert_dir=tmp_path)),
            x=stack.enter_context(XApiServer(credentials=X_SECRETS)),
            mastodon=stack.enter_context(mastodon_instance(access_token=MASTODON_TOKEN)),
            twilio=stack.enter_context(TwilioServer(credentials=TWILIO)),
            images=stack.enter_context(Images()),
        )


@pytest.fixture(autouse=True)
def credentials_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in ENV.items():
        monkeypatch.setenv(variable, value)


def live_settings(tmp_path: Path, providers: Providers) -> Settings:
    """A copy of the sample config whose channels all send to ``providers``, credentials from the environment."""
    ca_file = tmp_path / "smtp-ca.pem"
    ca_file.write_bytes(providers.smtp.ca_pem())
    channels = {
        "newsletter": {
            "credentials": {
                "host": providers.smtp.host,
                "port": providers.smtp.port,
                "security": "starttls",
                "username": providers.smtp.username,
                "password": {"env": "CARECAST_SMTP_PASSWORD"},
                "ca_file": str(ca_file),
            },
            "unsubscribe_secret": {"env": "CARECAST_UNSUBSCRIBE_SECRET"},
        },
        "x": {
            "credentials": {name: {"env": f"X_{name.upper()}"} for name in X_SECRETS.client_kwargs()},
            "api_base": providers.x.url,
            "image_allow_private": ["127.0.0.0/8"],  # the practice's site stands on this machine
            # The three newest blog posts are all threads (teasers by default); an observance (they come and go
            # with the date) could otherwise push them out.
            "too_long": "thread",
            "sources": ["blog"],
        },
        "mastodon": {
            "instance_url": providers.mastodon.url,
            "credentials": {"access_token": {"env": "MASTODON_ACCESS_TOKEN"}},
        },
        "sms": {
            "credentials": {
                "account_sid": TWILIO.account_sid,
                "auth_token": {"env": "TWILIO_AUTH_TOKEN"},
                "api_base": providers.twilio.url,
            },
        },
    }
    file = write_config(tmp_path, {"channels": channels})
    # The sample items' images are on the practice's real site: X downloads them, so they come from 127.0.0.1.
    site = f"{providers.images.url}/images/"
    for content in [file.parent / "samples" / "oakview-blog.xml", *(file.parent / "content").glob("*.md")]:
        text = content.read_text()
        content.write_text(
            text.replace("https://www.oakviewpt.com/images/", site).replace("image: /images/", f"image: {site}")
        )
    return load_settings(file)


def run(settings: Settings, ledger: Ledger, now: datetime) -> list[pipeline.Outcome]:
    """One run as ``carecast run`` makes it, every channel publishing at ``now``; every source must be read."""
    pipeline.sync_audience(settings, ledger)
    reports = [pipeline.ingest(settings, ledger, source, now=now) for source in settings.sources]
    assert [report.error for report in reports] == [None] * len(reports)
    outcomes: list[pipeline.Outcome] = []
    for channel in pipeline.channel_names(settings):
        outcomes += pipeline.adapt(settings, ledger, channel, now=now)
        outcomes += pipeline.publish(settings, ledger, channel, now=now)
    return outcomes


def states(outcomes: list[pipeline.Outcome], *wanted: str) -> Counter[str]:
    """How many outcomes of each channel are in one of ``wanted`` states."""
    return Counter(outcome.channel for outcome in outcomes if outcome.state in wanted)


_watching: list[str] | None = None
_hooked = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _watching is None:
        return
    if event == "socket.connect" and isinstance(args[1], tuple):
        _watching.append(str(args[1][0]))
    elif event == "socket.getaddrinfo":
        _watching.append(str(args[0]))


@contextmanager
def hosts_reached() -> Iterator[list[str]]:
    """Every host this process looks up or connects to inside the block (through Python's audit events)."""
    global _watching, _hooked
    if not _hooked:
        # An audit hook cannot be removed: installed once, it records only inside this block.
        sys.addaudithook(_audit)
        _hooked = True
    reached: list[str] = []
    _watching = reached
    try:
        yield reached
    finally:
        _watching = None


@pytest.fixture
def practice(tmp_path: Path, providers: Providers) -> Iterator[tuple[Settings, Ledger]]:
    """The live settings and their ledger (``ledger.url`` of the sample config, inside ``tmp_path``)."""
    settings = live_settings(tmp_path, providers)
    ledger = Ledger(settings.ledger_url())
    yield settings, ledger
    ledger.close()


def test_a_live_run_reaches_everyone_once_and_a_second_run_sends_nothing(
    tmp_path: Path, providers: Providers, practice: tuple[Settings, Ledger], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings, ledger = practice

    with hosts_reached() as hosts:
        first = run(settings, ledger, ALL_OPEN)
        after_first = providers.sent()
        second = run(settings, ledger, ALL_OPEN)

    assert hosts and set(hosts) <= {"127.0.0.1"}, "nothing leaves the machine"
    assert states(first, "retry", "failed") == {}, [o for o in first if o.state in ("retry", "failed")]
    # The provider update and the reactivation have no credentials here: they go to the outbox (test_audiences.py
    # sends them live).
    assert states(first, "published") == {
        "newsletter": 1,
        "provider-update": 1,
        "reactivation-email": 1,
        "x": 3,
        "mastodon": 3,
        "sms": 1,
        "reactivation-text": 1,
    }

    # Newsletter: one message per consenting subscriber, over one TLS connection, each with its own unsubscribe.
    emails = providers.smtp.messages
    assert sorted(address for message in emails for address in message.rcpt_tos) == sorted(NEWSLETTER_RECIPIENTS)
    assert all(message.tls and message.username == "carecast" for message in emails)
    assert providers.smtp.connections == 1
    unsubscribe_links = {message.parsed()["List-Unsubscribe"] for message in emails}
    assert len(unsubscribe_links) == len(NEWSLETTER_RECIPIENTS)

    # X: three posts, each a reply chain, among them a 3-part thread, each with its image on the first part.
    tweets = {tweet.id: tweet for tweet in providers.x.tweets}
    roots = [tweet for tweet in tweets.values() if tweet.in_reply_to_tweet_id is None]
    chains = []
    for root in roots:
        chain = [root]
        while replies := [t for t in tweets.values() if t.in_reply_to_tweet_id == chain[-1].id]:
            [reply] = replies
            chain.append(reply)
        chains.append(chain)
    assert len(roots) == 3 and sum(len(chain) for chain in chains) == len(tweets)
    assert 3 in [len(chain) for chain in chains]
    for chain in chains:
        assert [tweet.text.split(" ", 1)[0] for tweet in chain] == [
            f"{n}/{len(chain)}" for n in range(1, len(chain) + 1)
        ]
        assert chain[0].media_ids and not any(tweet.media_ids for tweet in chain[1:])
    forwarded = {request.headers["X-Forwarded-Host"] for request in providers.x.requests}
    assert forwarded == {"api.twitter.com"}  # media too: X API v2's POST /2/media/upload
    assert len(providers.x.requests_to("POST", "/2/media/upload")) == 3
    assert len(providers.x.alt_texts) == 3  # every picture has its alt text

    # Mastodon: one status per item, each with its UTM-tagged link.
    statuses = providers.statuses()
    assert len(statuses) == 3
    assert all("utm_source=mastodon" in status["content"] for status in statuses)

    # SMS: one text per consenting recipient, the same body, from the practice's number, in their window.
    texts = providers.twilio.messages
    assert sorted(text["to"] for text in texts) == SMS_RECIPIENTS
    assert len({text["body"] for text in texts}) == 1
    assert {text["from"] for text in texts} == {"+13125550100"}

    # The second run: nothing new to adapt, nothing due, nothing on any wire.
    assert states(second, "published", "retry", "failed") == {}
    assert providers.sent() == after_first

    assert_no_secret_leaked(tmp_path, caplog, [*first, *second])


def test_a_text_outside_its_window_waits_for_the_next_run_after_it_opens(
    tmp_path: Path, providers: Providers, practice: tuple[Settings, Ledger], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings, ledger = practice

    early = run(settings, ledger, LA_CLOSED)
    texted_early = sorted(text["to"] for text in providers.twilio.messages)
    later = run(settings, ledger, ALL_OPEN)
    texted_later = sorted(text["to"] for text in providers.twilio.messages)
    before_last = providers.sent()
    last = run(settings, ledger, ALL_OPEN)

    [waiting] = [outcome for outcome in early if outcome.channel == "sms" and outcome.state != "skipped"]
    assert waiting.state == "retry" and "1 outside their quiet hours" in waiting.detail
    assert "2026-12-01T16:00:00+00:00" in waiting.detail  # 08:00 in Los Angeles
    assert texted_early == [number for number in SMS_RECIPIENTS if number != LOS_ANGELES]
    # LinkedIn's drafts wait for review (the sample reviews it) in every run: only the text goes out.
    assert [(o.channel, o.state) for o in later if o.state not in ("skipped", "waiting")] == [("sms", "published")]
    assert texted_later == SMS_RECIPIENTS
    assert states(last, "published", "retry", "failed") == {}
    assert providers.sent() == before_last

    assert_no_secret_leaked(tmp_path, caplog, [*early, *later, *last])


def assert_no_secret_leaked(tmp_path: Path, caplog: pytest.LogCaptureFixture, outcomes: list[pipeline.Outcome]) -> None:
    """No secret in a log line (any logger, DEBUG up, exceptions included), an outcome or any file of the run
    (ledger database, outbox, config copy)."""
    files = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "ledger.db" for path in tmp_path.rglob("*")), "the ledger is one of the files searched"
    lines = [caplog.handler.format(record) for record in caplog.records]
    said = repr(outcomes)
    assert lines and "Authorization" not in said
    for secret in ENV.values():
        assert secret not in said
        assert not [content for content in files if secret.encode() in content]
        assert not [line for line in lines if secret in line]
        assert secret not in caplog.text
