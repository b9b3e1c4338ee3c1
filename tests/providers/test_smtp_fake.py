"""The SMTP fake speaks the protocol as smtplib (the newsletter's client) meets it: AUTH, delivery, bounces,
forced failures, storms of transient replies, STARTTLS."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.providers.smtp import SmtpServer, SmtpStorm


def newsletter(to: str = "pat@example.org") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Oakview PT <news@oakviewpt.com>"
    message["To"] = to
    message["Subject"] = "October is PT Month"
    message.set_content("Plain text first.")
    message.add_alternative("<p>HTML last.</p>", subtype="html")
    return message


def test_smtp_auth_delivery_and_bounce() -> None:
    with SmtpServer(bounce=["gone@example.org"]) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.login(server.username, server.password)
            refused = client.send_message(newsletter(), to_addrs=["pat@example.org", "gone@example.org"])

        assert set(refused) == {"gone@example.org"} and refused["gone@example.org"][0] == 550
        assert server.connections == 1
        [received] = server.messages
        assert (received.mail_from, received.rcpt_tos, received.username, received.tls) == (
            "news@oakviewpt.com",
            ("pat@example.org",),
            server.username,
            False,
        )
        parsed = received.parsed()
        assert parsed["Subject"] == "October is PT Month"
        assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]


def test_smtp_refuses_bad_or_missing_auth_and_forced_failures() -> None:
    with SmtpServer() as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login(server.username, "wrong")
            with pytest.raises(smtplib.SMTPSenderRefused):
                client.send_message(newsletter())
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.login(server.username, server.password)
            server.force_data_replies("451 4.3.0 Try again later")
            with pytest.raises(smtplib.SMTPDataError) as caught:
                client.send_message(newsletter())
            client.send_message(newsletter())

        assert caught.value.smtp_code == 451
        assert server.connections == 2
        assert len(server.messages) == 1


@pytest.mark.parametrize(
    ("kind", "code", "closes"), [("421 mail", 421, True), ("421 rcpt", 421, True), ("451 rcpt", 451, False)]
)
def test_smtp_storm_answers_a_transaction_with_a_transient_reply_and_closes_after_a_421(
    kind: str, code: int, closes: bool
) -> None:
    with SmtpServer() as server:
        storm = SmtpStorm(1.0, kinds=(kind,))
        server.storm(storm)
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.login(server.username, server.password)
            replies = [client.mail("news@oakviewpt.com")[0]]
            if kind.endswith("rcpt"):
                replies.append(client.rcpt("pat@example.org")[0])
            if closes:
                with pytest.raises(smtplib.SMTPServerDisconnected):
                    client.noop()
            else:
                assert client.rset()[0] == 250

        assert replies[-1] == code and replies[:-1] in ([], [250])
        assert storm.injected == {kind: 1} and server.messages == []


def test_smtp_starttls_with_runtime_certificate(tmp_path: Path) -> None:
    with SmtpServer(starttls=True, cert_dir=tmp_path) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client, pytest.raises(smtplib.SMTPNotSupportedError):
            client.login(server.username, server.password)
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.starttls(context=server.client_ssl_context())
            client.login(server.username, server.password)
            client.send_message(newsletter())

        assert [m.tls for m in server.messages] == [True]
