"""The newsletter over SMTP, against a real local SMTP server (aiosmtpd), through the real pipeline and ledger.

The sample audience (config/audience/newsletter.csv) has 6 consenting subscribers and 4 who must be skipped:
2 unsubscribed, 1 bounced, 1 without consent.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from carecast.channel import Outbox, PublishContext
from carecast.cli import main
from carecast.config import Settings
from carecast.errors import ConfigError, CredentialError, PublishError
from carecast.ledger import Ledger
from carecast.model import ContentItem, content_hash
from carecast.pipeline import Outcome, make_channel, publish, sync_audience
from carecast.practice import load_settings
from carecast.unsubscribe import apply_unsubscribe, verify_token
from carecast_channels.newsletter import NewsletterChannel
from carecast_channels.newsletter.smtp_transaction import _data, transact
from tests.channels.conftest import naming_any, our_log_lines, sample_addresses
from tests.conftest import write_config
from tests.factories import NEWSLETTER_RECIPIENTS, reveals
from tests.providers.smtp import ReceivedMessage, SmtpServer

PASSWORD = "test-smtp-password"
UNSUBSCRIBE_SECRET = "oakview-unsubscribe-hmac-key-0f3c"
LIST_ID = "oakview-pt-newsletter.oakviewpt.com"
SKIPPED = "4 skipped (1 no consent on file, 1 status is bounced, 2 status is unsubscribed)"
AUDIENCE = sample_addresses("newsletter")


def item(item_id: str) -> ContentItem:
    return ContentItem(
        id=item_id,
        source="blog",
        kind="post",
        title=f"Five stretches for desk workers ({item_id})",
        url="https://www.oakviewpt.com/blog/desk-stretches",
        summary_html="<p>Sitting all day? These <strong>five stretches</strong> take ten minutes.</p>",
        summary_text="Sitting all day? These five stretches take ten minutes.",
        published=datetime(2026, 3, 2, 15, 0, tzinfo=UTC),
        content_hash=content_hash(item_id),
    )


@dataclass
class Practice:
    """A project folder with the sample config sending to ``smtp``, its ledger, and helpers to publish."""

    settings: Settings
    ledger: Ledger
    smtp: SmtpServer

    @property
    def channel(self) -> NewsletterChannel:
        channel = make_channel(self.settings, "newsletter")
        assert isinstance(channel, NewsletterChannel)
        return channel

    def approve(self, item_id: str = "post-desk") -> None:
        """Store an approved newsletter draft of one new item, as adapt does with approval: auto."""
        self.ledger.upsert_items([item(item_id)])
        self.ledger.save_draft(self.channel.render([item(item_id)]), "default", "approved")

    def publish(self) -> list[Outcome]:
        return publish(self.settings, self.ledger, "newsletter")

    def recipients(self) -> list[str]:
        return [address for message in self.smtp.messages for address in message.rcpt_tos]


def configure(tmp_path: Path, smtp: SmtpServer, **credentials: Any) -> Settings:
    section = {
        "host": "127.0.0.1",
        "port": smtp.port,
        "security": "starttls" if smtp.starttls else "none",
        "username": "carecast",
        "password": {"env": "CARECAST_TEST_SMTP_PASSWORD"},
    }
    if smtp.starttls:
        (tmp_path / "ca.pem").write_bytes(smtp.ca_pem())
        section["ca_file"] = str(tmp_path / "ca.pem")
    newsletter = {
        "credentials": section | credentials,
        "unsubscribe_secret": {"env": "CARECAST_TEST_UNSUBSCRIBE_SECRET"},
    }
    return load_settings(write_config(tmp_path, {"channels": {"newsletter": newsletter}}))


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARECAST_TEST_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("CARECAST_TEST_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)


@pytest.fixture(autouse=True)
def no_address_in_our_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a scenario does, no log line of ours names a recipient's address."""
    caplog.set_level(logging.DEBUG)
    yield
    assert naming_any(our_log_lines(caplog), AUDIENCE) == []


def practice_on(tmp_path: Path, ledger_url: str, smtp: SmtpServer) -> Iterator[Practice]:
    settings = configure(tmp_path, smtp)
    ledger = Ledger(ledger_url)
    try:
        sync_audience(settings, ledger)
        yield Practice(settings, ledger, smtp)
    finally:
        ledger.close()


@pytest.fixture(params=["plain", "starttls"])
def practice(request: pytest.FixtureRequest, tmp_path: Path, ledger_url: str) -> Iterator[Practice]:
    """The sample practice and an SMTP server, in plain text on 127.0.0.1 and with STARTTLS."""
    with SmtpServer(starttls=request.param == "starttls", cert_dir=tmp_path) as smtp:
        yield from practice_on(tmp_path, ledger_url, smtp)


def one_click_token(message: ReceivedMessage) -> str:
    https = str(message.parsed()["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    return parse_qs(urlsplit(https).query)["t"][0]


def bodies(message: EmailMessage) -> str:
    return "".join(str(part.get_content()) for part in message.iter_parts())


# -- delivering ---------------------------------------------------------------------------------------------------


def test_every_consenting_subscriber_gets_exactly_one_message(practice: Practice) -> None:
    practice.approve()
    [outcome] = practice.publish()
    assert outcome.state == "published"
    assert outcome.detail == f"smtp 127.0.0.1:{practice.smtp.port}: 6 sent, {SKIPPED}"
    assert sorted(practice.recipients()) == sorted(NEWSLETTER_RECIPIENTS)
    for message in practice.smtp.messages:
        parsed = message.parsed()
        assert [address.addr_spec for address in parsed["To"].addresses] == list(message.rcpt_tos)
        assert message.mail_from == "news@oakviewpt.com"
        assert message.username == "carecast"
        assert message.tls is practice.smtp.starttls
    assert practice.smtp.connections == 1, "one connection for the whole batch"
    deliveries = practice.ledger.deliveries(1)
    assert {address: record.state for address, record in deliveries.items()} == dict.fromkeys(
        NEWSLETTER_RECIPIENTS, "sent"
    )
    sent_ids = {record.provider_id for record in deliveries.values()}
    assert sent_ids == {str(message.parsed()["Message-ID"]) for message in practice.smtp.messages}


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b".", b"..", b"a", b"\r\n", b"\n", b"\r", b" ."]), max_size=40))
@example([b".", b"\r\n", b".", b"\n", b"."])
def test_the_data_sent_is_smtplibs(pieces: list[bytes]) -> None:
    """Dots doubled at each line's start and the end line added, byte for byte as ``smtplib.SMTP.data`` does."""
    raw = b"".join(pieces)
    stuffed = re.sub(rb"(?m)^\.", b"..", raw)  # smtplib's _quote_periods
    assert _data(raw) == stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n"


def test_lines_starting_with_a_dot_arrive_as_written() -> None:
    raw = b"Subject: dots\r\n\r\n.first\r\n..second\r\nmid.dle\r\n.\r\n=\r\n.com/\r\n"
    with SmtpServer() as server, smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
        smtp.login(server.username, server.password)
        transact(smtp, "news@oakviewpt.com", "ann@example.com", raw, ())
        [message] = server.messages
    assert message.raw == raw


def test_publishing_again_sends_nothing(practice: Practice, tmp_path: Path) -> None:
    practice.approve()
    practice.publish()
    assert practice.publish() == []
    # Even the same publication handed to the channel again (a retry after a crash) reaches nobody twice.
    context = PublishContext(1, Outbox(tmp_path / "outbox"), practice.ledger)
    [stored] = practice.ledger.drafts("newsletter")
    receipt = practice.channel.publish(stored.draft, context)
    assert receipt.location.endswith(f"6 sent, {SKIPPED}")
    assert len(practice.smtp.messages) == 6
    assert practice.smtp.connections == 1, "nobody left to send to: no connection opened"


def test_each_recipient_gets_their_own_verifiable_unsubscribe_token(practice: Practice) -> None:
    practice.approve()
    practice.publish()
    secret = SecretStr(UNSUBSCRIBE_SECRET)
    tokens = {}
    for message in practice.smtp.messages:
        parsed = message.parsed()
        token = one_click_token(message)
        assert verify_token(practice.ledger, secret, token)[:2] == (LIST_ID, message.rcpt_tos[0])
        assert not reveals(token, message.rcpt_tos[0])
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert f"https://www.oakviewpt.com/unsubscribe?t={token}" in bodies(parsed)
        tokens[message.rcpt_tos[0]] = token
    assert len(set(tokens.values())) == 6

    # The practice's endpoint applies one; the next newsletter skips that subscriber.
    apply_unsubscribe(practice.ledger, secret, tokens["maria.gonzalez@example.com"])
    practice.approve("post-next")
    [outcome] = practice.publish()
    assert outcome.detail.endswith(
        "5 sent, 5 skipped (1 no consent on file, 1 status is bounced, 3 status is unsubscribed)"
    )
    assert practice.recipients().count("maria.gonzalez@example.com") == 1


def test_a_550_bounce_suppresses_that_address_and_the_rest_go_on(tmp_path: Path, ledger_url: str) -> None:
    with SmtpServer(bounce=["linda.park@example.org"]) as smtp:
        for practice in practice_on(tmp_path, ledger_url, smtp):
            practice.approve()
            [outcome] = practice.publish()
            assert outcome.state == "published"
            assert outcome.detail.endswith(f"5 sent, 1 not delivered, {SKIPPED}")
            assert sorted(practice.recipients()) == sorted(NEWSLETTER_RECIPIENTS - {"linda.park@example.org"})
            linda = practice.ledger.deliveries(1)["linda.park@example.org"]
            assert (linda.state, linda.transient) == ("failed", False)
            assert linda.error == "bounced: 550 5.1.1 mailbox unavailable"
            statuses = {s.address: s.status for s in practice.ledger.subscribers("newsletter")}
            assert statuses["linda.park@example.org"] == "bounced"
            # Importing the list again (every run does) keeps the bounce.
            sync_audience(practice.settings, practice.ledger)
            practice.approve("post-next")
            [outcome] = practice.publish()
            assert outcome.detail.endswith(
                "5 sent, 5 skipped (1 no consent on file, 2 status is bounced, 2 status is unsubscribed)"
            )
            assert "linda.park@example.org" not in practice.recipients()


def test_an_internationalized_address_goes_out_with_smtputf8(tmp_path: Path, ledger_url: str) -> None:
    with SmtpServer() as smtp:  # aiosmtpd offers SMTPUTF8 (RFC 6531)
        for practice in practice_on(tmp_path, ledger_url, smtp):
            audience = practice.settings.path(practice.settings.audience) / "newsletter.csv"
            with audience.open("a") as stream:
                stream.write("josé@münchen.example,José Müller,2025-01-14T09:12:00-06:00,web form,Yes.,subscribed\n")
            sync_audience(practice.settings, practice.ledger)
            practice.approve()
            [outcome] = practice.publish()
            assert outcome.detail.endswith(f"7 sent, {SKIPPED}")
            [message] = [m for m in smtp.messages if m.rcpt_tos == ("josé@münchen.example",)]
            # RFC 6532: the header in UTF-8 as it is (Python's parser reads such bytes back as surrogates).
            assert "\r\nTo: José Müller <josé@münchen.example>\r\n".encode() in message.raw
            token = one_click_token(message)
            assert verify_token(practice.ledger, SecretStr(UNSUBSCRIBE_SECRET), token).address == "josé@münchen.example"


@pytest.mark.parametrize(
    ("reply", "first_run", "connections"),
    [
        ("451 4.3.0 Try again later", 5, 2),  # that recipient is retried, the rest of the batch goes on
        ("421 4.3.2 Service shutting down", 2, 2),  # the server closes: the batch stops, the rest wait
    ],
)
def test_a_transient_failure_mid_batch_resumes_with_the_rest(
    practice: Practice, reply: str, first_run: int, connections: int
) -> None:
    practice.approve()
    practice.smtp.force_data_replies(reply, after=2)
    [outcome] = practice.publish()
    assert outcome.state == "retry"
    assert reply.split()[0] in outcome.detail
    assert len(practice.smtp.messages) == first_run
    [record] = practice.ledger.publications()
    assert (record.state, record.transient) == ("failed", True)

    [outcome] = practice.publish()
    assert outcome.state == "published"
    assert outcome.detail.endswith(f"6 sent, {SKIPPED}")
    assert sorted(practice.recipients()) == sorted(NEWSLETTER_RECIPIENTS), "everyone once, nobody twice"
    assert practice.smtp.connections == connections
    assert practice.publish() == []


def test_no_address_in_errors_notes_or_outcomes(tmp_path: Path, ledger_url: str) -> None:
    with SmtpServer(bounce=["linda.park@example.org"]) as smtp:
        for practice in practice_on(tmp_path, ledger_url, smtp):
            practice.approve()
            # SMTP replies echo the address they are about (the 550 of a bounce does too); ours never repeat them.
            smtp.force_data_replies("452 4.2.2 <maria.gonzalez@example.com>: mailbox full", after=1)
            outcomes = practice.publish() + practice.publish()
            errors = [d.error for d in practice.ledger.deliveries(1).values()]
    assert [outcome.state for outcome in outcomes] == ["retry", "published"]
    assert "452 4.2.2 insufficient storage" in outcomes[0].detail
    assert naming_any([outcome.detail for outcome in outcomes] + errors, AUDIENCE) == []


# -- refusals -----------------------------------------------------------------------------------------------------


def test_a_refused_login_waits_for_the_staff_to_fix_the_password_then_sends(
    practice: Practice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARECAST_TEST_SMTP_PASSWORD", "not-the-password")
    practice.approve()
    [outcome] = practice.publish()
    assert outcome.state == "retry"
    assert "channels.newsletter.credentials" in outcome.detail and "fix the username or password" in outcome.detail
    assert "refused the login of 'carecast' (535" in outcome.detail
    assert "not-the-password" not in outcome.detail
    assert practice.smtp.messages == []
    assert practice.ledger.deliveries(1) == {}

    monkeypatch.setenv("CARECAST_TEST_SMTP_PASSWORD", PASSWORD)  # the staff fixed the credential
    [fixed] = practice.publish()
    assert fixed.state == "published" and len(practice.smtp.messages) == len(practice.ledger.deliveries(1))


def test_an_unset_password_is_raised_as_is_before_connecting(
    practice: Practice, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CARECAST_TEST_SMTP_PASSWORD")
    practice.approve()
    [stored] = practice.ledger.drafts("newsletter")
    context = PublishContext(practice.ledger.claim(stored.id), Outbox(tmp_path / "outbox"), practice.ledger)
    # The pipeline decides what a missing credential means (nothing was sent), the same for every channel.
    with pytest.raises(CredentialError, match="environment variable CARECAST_TEST_SMTP_PASSWORD: is not set"):
        practice.channel.publish(stored.draft, context)
    assert practice.smtp.connections == 0
    assert practice.ledger.deliveries(context.publication_id) == {}


def test_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    with SmtpServer(starttls=True, cert_dir=tmp_path) as smtp:
        settings = configure(tmp_path, smtp, ca_file=None)
        channel = make_channel(settings, "newsletter")
        with pytest.raises(PublishError, match=r"TLS with the SMTP server 127\.0\.0\.1:\d+ failed") as caught:
            channel.verify()
        assert caught.value.transient is False
        assert smtp.messages == []


def test_an_unreachable_server_is_transient_and_claims_nobody(tmp_path: Path, ledger_url: str) -> None:
    with socket.socket() as probe:  # a port just freed: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with SmtpServer() as smtp:
        for practice in practice_on(tmp_path, ledger_url, smtp):
            practice.settings = configure(tmp_path / "closed", smtp, port=closed)
            practice.approve()
            [outcome] = practice.publish()
            assert outcome.state == "retry"
            assert f"cannot reach the SMTP server 127.0.0.1:{closed}" in outcome.detail
            assert practice.ledger.deliveries(1) == {}
            assert smtp.connections == 0


# -- verify (carecast check --live) --------------------------------------------------------------------------------


def test_check_live_logs_in_and_sends_nothing(practice: Practice, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--live", "--config", str(practice.settings.file)]) == 0
    out = capsys.readouterr().out
    security = "starttls" if practice.smtp.starttls else "none"
    expected = f"newsletter: SMTP 127.0.0.1:{practice.smtp.port} ({security}): logged in as carecast, nothing sent"
    assert expected in out.splitlines()
    assert practice.smtp.messages == []
    assert practice.smtp.connections == 1


def test_check_live_fails_on_a_wrong_password(
    practice: Practice, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARECAST_TEST_SMTP_PASSWORD", "wrong-password-value")
    assert main(["check", "--live", "--config", str(practice.settings.file)]) == 1
    err = capsys.readouterr().err
    assert "newsletter: FAILED:" in err
    assert "wrong-password-value" not in err
    monkeypatch.delenv("CARECAST_TEST_SMTP_PASSWORD")
    with pytest.raises(CredentialError, match="CARECAST_TEST_SMTP_PASSWORD"):
        practice.channel.verify()


# -- secrets ------------------------------------------------------------------------------------------------------


def test_no_secret_appears_in_logs_errors_ledger_outbox_or_on_the_wire(
    tmp_path: Path, ledger_url: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with SmtpServer(bounce=["linda.park@example.org"]) as smtp:
        for practice in practice_on(tmp_path, ledger_url, smtp):
            practice.approve()
            smtp.force_data_replies("451 4.3.0 Try again later", after=1)
            texts += [outcome.detail for outcome in practice.publish()]
            texts += [outcome.detail for outcome in practice.publish()]
            texts.append(practice.channel.verify())
            for message in smtp.messages:
                texts.append(message.raw.decode())
            for record in practice.ledger.publications():
                texts.append(repr(record.to_json()))
                texts += [repr(delivery) for delivery in practice.ledger.deliveries(record.id).values()]
            texts += [repr(subscriber) for subscriber in practice.ledger.subscribers("newsletter")]
            texts.append(repr(practice.settings))
    # A refused login's error, as staff would see it.
    with SmtpServer(password="another-password") as smtp:
        with pytest.raises(CredentialError) as caught:
            make_channel(configure(tmp_path / "wrong", smtp), "newsletter").verify()
        texts += [str(caught.value), repr(caught.value.__cause__)]
    texts += [record.getMessage() for record in caplog.records]
    texts += list(capsys.readouterr())
    texts += [path.read_bytes().decode() for path in tmp_path.rglob("*") if path.is_file() and path.suffix != ".db"]
    texts += [path.read_bytes().decode("latin-1") for path in tmp_path.rglob("*.db")]
    assert any("sent" in text for text in texts)
    for secret in (PASSWORD, UNSUBSCRIBE_SECRET):
        assert not [text for text in texts if secret in text]


# -- configuration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ({"host": "smtp.example.com", "security": "none"}, "only for a server on 127.0.0.1"),
        ({"password": "in-the-file"}, "password"),
        ({"security": "ssl"}, "security"),
        ({"port": 0}, "port"),
    ],
)
def test_the_config_refuses(tmp_path: Path, credentials: dict[str, Any], expected: str) -> None:
    with SmtpServer() as smtp, pytest.raises(ConfigError, match=expected):
        configure(tmp_path, smtp, **credentials)


def test_credentials_need_an_unsubscribe_secret(tmp_path: Path) -> None:
    credentials = {"host": "smtp.example.com", "username": "u", "password": {"env": "SMTP_PASSWORD"}}
    changes = {"channels": {"newsletter": {"credentials": credentials}}}
    with pytest.raises(ConfigError, match="unsubscribe_secret is required"):
        load_settings(write_config(tmp_path, changes))


def test_default_ports_follow_the_security(tmp_path: Path) -> None:
    credentials = {"host": "smtp.example.com", "username": "u", "password": {"env": "SMTP_PASSWORD"}}
    servers = []
    for security in ("starttls", "tls"):
        newsletter = {"credentials": credentials | {"security": security}, "unsubscribe_secret": {"env": "K"}}
        settings = load_settings(write_config(tmp_path / security, {"channels": {"newsletter": newsletter}}))
        config = make_channel(settings, "newsletter").config
        servers.append(config.credentials.server)  # type: ignore[attr-defined]
    assert servers == ["smtp.example.com:587", "smtp.example.com:465"]
