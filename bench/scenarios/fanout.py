"""Fan-out scenarios: one text or newsletter to many subscribers (Twilio, SMTP, the outbox), paced sends,
and the audience step when nothing changed.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from bench.scenarios.base import (
    CHUNK,
    OPEN,
    SECRETS_ENV,
    SMTP_PASSWORD,
    SMTP_USER,
    X_KEYS,
    Scenario,
)
from bench.scenarios.content import (
    baseline_db,
    chunks,
    consenting,
    long_items,
    observance,
    write_audience,
)


class FanoutSms(Scenario):
    """One text to ``size`` consenting subscribers through the local Twilio server."""

    name = "fanout-sms"
    unit = "recipients"
    sizes: ClassVar[dict[str, int]] = {"full": 20000, "default": 1000, "quick": 5}
    baseline_says = "one requests.Session, claims and results in chunks of 500"

    def sms_config(self) -> dict[str, Any]:
        return {
            "credentials": {
                "account_sid": self.servers.twilio_sid,
                "auth_token": {"env": "BENCH_TWILIO_TOKEN"},
                "api_base": self.servers.twilio_url,
            },
            # The local server takes any rate (a long code's default, 1/s, would make this a pacing scenario).
            "rate": "100000/s",
        }

    def prepare(self, feeds: dict[str, bytes]) -> None:
        from carecast.pipeline import make_channel, sync_audience

        self.write_config({"channels": {"sms": self.sms_config()}})
        write_audience(self.workdir / "config" / "audience", "sms", self.size)
        settings, ledger = self.settings_and_ledger()
        sync_audience(settings, ledger)
        text = "National PT Month: thank you for trusting us with your recovery."
        item = observance("observance:bench", "National Physical Therapy Month", text)
        ledger.upsert_items([item])
        ledger.save_draft(make_channel(settings, "sms").render([item]), settings.channels["sms"].account, "approved")
        ledger.close()
        self.save_template()

    def carecast(self) -> dict[str, float]:
        return self.publish_one("sms", OPEN)

    def baseline(self) -> dict[str, float]:
        import requests

        url = f"{self.servers.twilio_url}/2010-04-01/Accounts/{self.servers.twilio_sid}/Messages.json"
        body = "Oakview PT: National PT Month: thank you for trusting us with your recovery. Reply STOP to opt out"
        db = baseline_db(self.workdir / "baseline.db")
        with requests.Session() as session:
            session.auth = (self.servers.twilio_sid, SECRETS_ENV["BENCH_TWILIO_TOKEN"])
            for chunk in chunks(consenting(self.ledger_file, "sms"), self.delivery_chunk):
                with db:
                    db.executemany("insert into sends values (?, 'claimed', null)", [(a,) for a in chunk])
                results = []
                for address in chunk:
                    answer = session.post(url, data={"To": address, "From": "+13125550100", "Body": body}, timeout=10)
                    results.append(
                        ("sent" if answer.status_code == 201 else "failed", answer.json().get("sid"), address)
                    )
                with db:
                    db.executemany("update sends set state = ?, provider_id = ? where address = ?", results)
        db.close()
        return {}


class FanoutSmsOneByOne(FanoutSms):
    """``fanout-sms`` at the default ``delivery_chunk: 1``: each recipient claimed and recorded on their own, so a
    process killed mid-send leaves only the one in flight unknown (issue 8)."""

    name = "fanout-sms-chunk1"
    baseline_says = "one requests.Session, each send claimed and recorded in its own transaction"
    delivery_chunk = 1


class FanoutSmsConcurrent(FanoutSms):
    """``fanout-sms`` with ``concurrency: 4``: four texts in flight at once over one session, the baseline still one
    at a time."""

    name = "fanout-sms-4"
    baseline_says = "one requests.Session, one at a time, claims and results in chunks of 500"

    def sms_config(self) -> dict[str, Any]:
        return super().sms_config() | {"concurrency": 4}


class FanoutSmsOneByOneConcurrent(FanoutSmsConcurrent):
    """``fanout-sms-4`` at the default ``delivery_chunk: 1``: recipients claimed four at a time (those in flight)."""

    name = "fanout-sms-chunk1-4"
    baseline_says = "one requests.Session, one at a time, each send claimed and recorded in its own transaction"
    delivery_chunk = 1


class ScaleSms(FanoutSms):
    """``fanout-sms`` at 1x, 4x and 16x its size: time and peak memory as the audience grows."""

    name = "scale-sms"
    sizes: ClassVar[dict[str, int]] = {"full": 20000, "default": 250, "quick": 2}


class PacedSms(FanoutSms):
    """``fanout-sms`` against a Twilio server that allows 50 messages/s, the channel configured ``rate: 50/s``."""

    name = "paced-sms"
    sizes: ClassVar[dict[str, int]] = {"full": 2000, "default": 500, "quick": 3}
    baseline_says = "the same loop, sleeping 1/50 s before each send"
    twilio_per_second = 50.0

    def sms_config(self) -> dict[str, Any]:
        return super().sms_config() | {"rate": "50/s"}

    def baseline(self) -> dict[str, float]:
        import time

        import requests

        url = f"{self.servers.twilio_url}/2010-04-01/Accounts/{self.servers.twilio_sid}/Messages.json"
        with requests.Session() as session:
            session.auth = (self.servers.twilio_sid, SECRETS_ENV["BENCH_TWILIO_TOKEN"])
            for address in consenting(self.ledger_file, "sms"):
                time.sleep(1 / 50)
                session.post(url, data={"To": address, "From": "+13125550100", "Body": "Oakview PT: hi"}, timeout=10)
        return {}


class FanoutOutbox(FanoutSms):
    """The same text to ``size`` subscribers without credentials: one outbox file holding every request."""

    name = "fanout-outbox"
    baseline_says = "json.dump of the same requests"

    def sms_config(self) -> dict[str, Any]:
        return {}

    def baseline(self) -> dict[str, float]:
        import json

        body = "Oakview PT: National PT Month: thank you for trusting us with your recovery. Reply STOP to opt out"
        requests = [
            {"To": address, "From": "+13125550100", "Body": body} for address in consenting(self.ledger_file, "sms")
        ]
        (self.workdir / "outbox").mkdir(exist_ok=True)
        (self.workdir / "outbox" / "baseline.json").write_text(json.dumps({"requests": requests}, indent=2))
        return {}


class PacedX(Scenario):
    """``size`` posts on X against a server allowing ``x_posts_per_window``, the channel configured at that rate."""

    name = "paced-x"
    unit = "posts"
    sizes: ClassVar[dict[str, int]] = {"full": 300, "default": 60, "quick": 3}
    baseline_says = "requests + OAuth 1.0a, sleeping until x-rate-limit-reset after a 429 (tweepy's wait_on_rate_limit)"
    x_posts_per_window = (20, 5)

    def texts(self) -> list[str]:
        return [
            f"Tip {n}: stand up and stretch for a minute every hour you sit. #physicaltherapy" for n in range(self.size)
        ]

    def prepare(self, feeds: dict[str, bytes]) -> None:
        from carecast.pipeline import make_channel

        posts, window = self.x_posts_per_window or (0, 0)
        x = {
            "credentials": {name: {"env": f"BENCH_X_{name.upper()}"} for name in X_KEYS},
            "api_base": self.servers.x_url,
            "account": "@oakviewpt",
            "hashtags": False,
            "rate": f"{posts}/{window}s",
        }
        self.write_config({"channels": {"x": x}})
        settings, ledger = self.settings_and_ledger()
        channel = make_channel(settings, "x")
        for number, text in enumerate(self.texts()):
            item = observance(f"observance:bench-{number}", text, text)
            ledger.upsert_items([item])
            ledger.save_draft(channel.render([item]), settings.channels["x"].account, "approved")
        ledger.close()
        self.save_template()

    def carecast(self) -> dict[str, float]:
        from carecast.pipeline import publish

        settings, ledger = self.settings_and_ledger()
        outcomes = publish(settings, ledger, "x", now=OPEN)
        assert [outcome.state for outcome in outcomes] == ["published"] * self.size, outcomes
        ledger.close()
        return {}

    def baseline(self) -> dict[str, float]:
        import time

        import requests
        from requests_oauthlib import OAuth1

        with requests.Session() as session:
            session.auth = OAuth1(
                X_KEYS["consumer_key"], X_KEYS["consumer_secret"], X_KEYS["access_token"], X_KEYS["access_token_secret"]
            )
            for text in self.texts():
                while (
                    answer := session.post(f"{self.servers.x_url}/2/tweets", json={"text": text}, timeout=30)
                ).status_code == 429:
                    time.sleep(max(0.0, int(answer.headers["x-rate-limit-reset"]) - time.time()))
                assert answer.status_code == 201, answer.text
        return {}


class FanoutSmtp(Scenario):
    """The newsletter to ``size`` consenting subscribers through the local SMTP server."""

    name = "fanout-smtp"
    unit = "recipients"
    sizes: ClassVar[dict[str, int]] = {"full": 50000, "default": 2000, "quick": 5}
    baseline_says = (
        "one smtplib connection, the same newsletter built once, tokens stored with the claims, claims and results "
        f"in chunks of {CHUNK}"
    )

    def prepare(self, feeds: dict[str, bytes]) -> None:
        from carecast.pipeline import make_channel, sync_audience
        from carecast_channels.newsletter import TOKEN_PLACEHOLDER

        credentials = {
            "host": "127.0.0.1",
            "port": self.servers.smtp_port,
            "security": "none",
            "username": SMTP_USER,
            "password": {"env": "BENCH_SMTP_PASSWORD"},
        }
        newsletter = {"credentials": credentials, "unsubscribe_secret": {"env": "BENCH_UNSUBSCRIBE_SECRET"}}
        newsletter["rate"] = "100000/s"  # the local server takes any rate (the channel's default is 60/min)
        self.write_config({"channels": {"newsletter": newsletter}})
        write_audience(self.workdir / "config" / "audience", "newsletter", self.size)
        settings, ledger = self.settings_and_ledger()
        sync_audience(settings, ledger)
        items = long_items(3)
        ledger.upsert_items(items)
        draft = make_channel(settings, "newsletter").render(items)
        ledger.save_draft(draft, settings.channels["newsletter"].account, "approved")
        ledger.close()
        self.save_template()
        # The baseline sends the same text and HTML (the same bytes on the wire), its token where CareCast's goes.
        (self.workdir / "newsletter.txt").write_text(draft.text.replace(TOKEN_PLACEHOLDER, "TOKEN"))
        (self.workdir / "newsletter.html").write_text((draft.html or "").replace(TOKEN_PLACEHOLDER, "TOKEN"))

    def carecast(self) -> dict[str, float]:
        return self.publish_one("newsletter")

    def baseline(self) -> dict[str, float]:
        import email.policy
        import secrets
        import smtplib
        from email.message import EmailMessage
        from email.utils import make_msgid

        message = EmailMessage()
        message["From"] = "Oakview Physical Therapy <news@oakviewpt.com>"
        message["To"] = "RECIPIENT"
        message["Subject"] = "Oakview PT news: desk stretches"
        message["List-Unsubscribe"] = "<https://www.oakviewpt.com/unsubscribe?t=TOKEN>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content((self.workdir / "newsletter.txt").read_text(), cte="quoted-printable")
        page = (self.workdir / "newsletter.html").read_text()
        message.add_alternative(page, subtype="html", cte="quoted-printable")
        raw = message.as_bytes(policy=email.policy.SMTP)
        db = baseline_db(self.workdir / "baseline.db")
        db.execute("create table tokens (token text primary key, address text)")
        with smtplib.SMTP("127.0.0.1", self.servers.smtp_port, timeout=30) as smtp:
            smtp.login(SMTP_USER, SMTP_PASSWORD)
            for chunk in chunks(consenting(self.ledger_file, "newsletter"), self.delivery_chunk):
                # Every link sent must work: the tokens are stored before any of the chunk goes out.
                tokens = {address: secrets.token_urlsafe(24) for address in chunk}
                with db:
                    db.executemany("insert into sends values (?, 'claimed', null)", [(a,) for a in chunk])
                    db.executemany("insert into tokens values (?, ?)", [(t, a) for a, t in tokens.items()])
                results = []
                for address in chunk:
                    message_id = make_msgid(domain="oakviewpt.com")
                    personal = raw.replace(b"RECIPIENT", address.encode()).replace(b"TOKEN", tokens[address].encode())
                    smtp.sendmail(
                        "news@oakviewpt.com", [address], b"Message-ID: " + message_id.encode() + b"\r\n" + personal
                    )
                    results.append(("sent", message_id, address))
                with db:
                    db.executemany("update sends set state = ?, provider_id = ? where address = ?", results)
        db.close()
        return {}


class FanoutSmtpOneByOne(FanoutSmtp):
    """``fanout-smtp`` at the default ``delivery_chunk: 1``: each recipient claimed (and given a token) and recorded
    on their own, so a process killed mid-send leaves only the one in flight unknown (issue 8)."""

    name = "fanout-smtp-chunk1"
    baseline_says = "one smtplib connection, the same newsletter built once, each send claimed and recorded alone"
    delivery_chunk = 1


class ScaleNewsletter(FanoutSmtp):
    """``fanout-smtp`` at 1x, 4x and 16x its size: time and peak memory as the audience grows."""

    name = "scale-newsletter"
    sizes: ClassVar[dict[str, int]] = {"full": 50000, "default": 500, "quick": 2}


class AudienceUnchanged(Scenario):
    """A run's audience step when the subscriber file (``size`` rows) has not changed since the last run."""

    name = "audience-unchanged"
    unit = "subscribers in the CSV"
    sizes: ClassVar[dict[str, int]] = {"full": 50000, "default": 20000, "quick": 5}
    baseline_says = "SHA-256 of the file, compared with the one kept"

    def prepare(self, feeds: dict[str, bytes]) -> None:
        from carecast.pipeline import sync_audience

        self.write_config({})
        write_audience(self.workdir / "config" / "audience", "newsletter", self.size)
        settings, ledger = self.settings_and_ledger()
        sync_audience(settings, ledger)
        ledger.close()
        self.save_template()

    def carecast(self) -> dict[str, float]:
        from carecast.pipeline import sync_audience

        settings, ledger = self.settings_and_ledger()
        sync_audience(settings, ledger)
        ledger.close()
        return {}

    def baseline(self) -> dict[str, float]:
        for name in ("newsletter.csv", "sms.csv"):
            hashlib.sha256((self.workdir / "config" / "audience" / name).read_bytes()).hexdigest()
        return {}
