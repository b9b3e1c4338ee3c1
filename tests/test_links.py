"""Short links end to end: the sample practice's posts sent with ``links`` on, every short link followed over a
real server as a person and as each known preview fetcher, and the report counting them apart per channel and item.
Unknown codes 404; nothing personal in a code or in the clicks table."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
import requests
from sqlalchemy import inspect, text

from carecast import pipeline, report
from carecast.audience import load_audience
from carecast.config import Settings
from carecast.errors import ConfigError
from carecast.ledger import Ledger
from carecast.links import classify
from carecast.model import ContentItem, Draft, content_hash, now_utc
from carecast.practice import load_settings
from carecast.text import sms_measure
from carecast.webhooks import WebhookApp, make_server
from tests.conftest import commented_channels, write_config
from tests.providers.smtp import SmtpServer

DOMAIN = "go.oakviewpt.com"
SHORT = re.compile(rf"https://{re.escape(DOMAIN)}/([A-Za-z0-9_-]+)")
PERSON = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
#: Each preview fetcher as it introduces itself, and the name the report gives it.
FETCHERS = {
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)": "Slackbot",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)": "facebookexternalhit",
    "Twitterbot/1.0": "Twitterbot",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 "
    "Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0": "iMessage",
    "Mozilla/5.0": "Apple Mail Privacy Protection",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)": "LinkedInBot",
    "Mastodon/4.3.0 (http.rb/5.2.0; +https://mastodon.social/) Bot": "Mastodon",
    "Mozilla/5.0 (compatible; Barracuda Sentinel)": "Barracuda scanner",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(write_config(tmp_path, {"links": {"domain": DOMAIN}, **commented_channels()}))


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    opened = Ledger(settings.ledger_url())
    yield opened
    opened.close()


@pytest.fixture
def server(settings: Settings, ledger: Ledger) -> Iterator[str]:
    app = WebhookApp(settings, ledger)
    served = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{served.server_port}"
    served.shutdown()
    served.server_close()
    app.close()


def counted(ledger: Ledger, clicks: int, within: float = 10.0) -> None:
    """Wait until the ledger counts ``clicks`` clicks (the redirect's writer records them in batches)."""
    deadline = time.monotonic() + within
    while len(ledger.clicks()) < clicks:
        assert time.monotonic() < deadline, f"{len(ledger.clicks())} of {clicks} clicks counted"
        time.sleep(0.02)


def send_everything(settings: Settings, ledger: Ledger) -> dict[str, set[str]]:
    """Run the sample practice's pipeline; the short codes each channel's outbox holds."""
    pipeline.sync_audience(settings, ledger)
    for source in settings.sources:
        pipeline.ingest(settings, ledger, source)
    for channel in pipeline.channel_names(settings):
        pipeline.adapt(settings, ledger, channel)
        pipeline.publish(settings, ledger, channel)
    codes: dict[str, set[str]] = {}
    for path in settings.path(settings.outbox).rglob("*"):
        if path.is_file():
            codes.setdefault(path.parent.name, set()).update(SHORT.findall(readable(path)))
    return codes


def readable(path: Path) -> str:
    """An outbox file's text; an email's parts decoded (quoted-printable breaks a link across lines)."""
    if path.suffix != ".eml":
        return path.read_text()
    message = BytesParser(policy=policy.default).parse(path.open("rb"))
    return "\n".join(str(part.get_content()) for part in message.walk() if part.get_content_maintype() == "text")


def test_every_link_is_short_and_counted_for_people_and_previews_apart(
    settings: Settings, ledger: Ledger, server: str
) -> None:
    codes = send_everything(settings, ledger)
    assert {"newsletter", "x", "mastodon", "sms"} <= {channel for channel, found in codes.items() if found}
    assert (
        "utm_source"
        not in (settings.path(settings.outbox) / "sms")
        .joinpath(sorted(p.name for p in (settings.path(settings.outbox) / "sms").iterdir())[0])
        .read_text()
    )
    followed: set[tuple[str, str]] = set()
    followed_codes = set().union(*codes.values())
    for code in followed_codes:
        link = ledger.short_link(code)
        assert link is not None
        followed.add((link.item_id, link.channel))
        answer = requests.get(f"{server}/{code}", headers={"User-Agent": PERSON}, allow_redirects=False, timeout=10)
        assert answer.status_code == 302
        assert answer.headers["Location"] == link.target
        assert "utm_source=" in link.target
        for agent in FETCHERS:
            fetched = requests.get(f"{server}/{code}", headers={"User-Agent": agent}, allow_redirects=False, timeout=10)
            assert fetched.status_code == 302

    counted(ledger, len(followed_codes) * (1 + len(FETCHERS)))
    since = now_utc() - timedelta(days=1)
    built = report.build(settings, ledger, since, now_utc())
    clicked = {(row.item_id, row.channel): row for row in built.rows if row.people or row.previews}
    assert set(clicked) == followed
    for row in clicked.values():
        codes_of_row = 1 if row.channel != "newsletter" else row.people  # a digest item may link more than once
        assert row.people == codes_of_row
        assert row.previews == len(FETCHERS) * codes_of_row
        assert set(row.previews_by) == set(FETCHERS.values())
    table = report.render_table(built)
    assert "Previews (fetchers, not people)" in table
    assert "Apple Mail Privacy Protection" in table


def test_an_unknown_code_is_a_404_page_with_the_practice_website(server: str, settings: Settings) -> None:
    answer = requests.get(f"{server}/Zz9-unknown", headers={"User-Agent": PERSON}, timeout=10)
    assert answer.status_code == 404
    assert str(settings.practice.website) in answer.text
    assert requests.get(f"{server}/not/a-code", timeout=10).status_code == 404
    assert requests.head(f"{server}/Zz9-unknown", timeout=10).status_code == 404


def test_a_head_request_is_redirected_and_counted_as_a_preview(settings: Settings, ledger: Ledger, server: str) -> None:
    code = ledger.short_code("rss:blog:desk", "x", "https://www.oakviewpt.com/blog/desk?utm_source=twitter")
    answer = requests.head(f"{server}/{code}", headers={"User-Agent": PERSON}, timeout=10)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("utm_source=twitter")
    counted(ledger, 1)
    assert [(click.kind, click.agent) for click in ledger.clicks()] == [("preview", "HEAD request")]


def test_no_code_and_no_click_holds_anything_personal(settings: Settings, ledger: Ledger, server: str) -> None:
    codes = set().union(*send_everything(settings, ledger).values())
    for code in codes:
        requests.get(f"{server}/{code}", headers={"User-Agent": PERSON}, allow_redirects=False, timeout=10)
    counted(ledger, len(codes))
    assert {column["name"] for column in inspect(ledger.engine).get_columns("clicks")} == {
        "id",
        "link_id",
        "at",
        "kind",
        "agent",
    }
    with ledger.engine.connect() as connection:
        stored = " ".join(
            str(value)
            for table in ("clicks", "short_links")
            for row in connection.execute(text(f"SELECT * FROM {table}"))
            for value in row
        )
        people = [value for row in connection.execute(text("SELECT address, name FROM subscribers")) for value in row]
    assert people and not [person for person in people if person in stored]
    assert "127.0.0.1" not in stored and PERSON not in stored
    for code in codes:
        link = ledger.short_link(code)
        assert link is not None
        words = {word for word in re.split(r"[^a-z0-9]+", (link.item_id + " " + link.target).lower()) if len(word) > 3}
        assert not [word for word in words if word in code.lower()]
        assert len(code) == 8


def test_links_off_keeps_the_full_urls(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, {"links": "off"}))
    assert settings.links is None
    ledger = Ledger(settings.ledger_url())
    try:
        assert send_everything(settings, ledger) and not set().union(*send_everything(settings, ledger).values())
    finally:
        ledger.close()


def sms_texts(settings: Settings, ledger: Ledger) -> dict[str, str]:
    """The sample's texts, by SMS channel (the same text goes to each recipient): its outbox's Twilio requests."""
    send_everything(settings, ledger)
    texts: dict[str, str] = {}
    for name in ("sms", "reactivation-text"):
        folder = settings.path(settings.outbox) / name
        [texts[name]] = {
            request["Body"] for path in folder.glob("*.json") for request in json.loads(path.read_text())["requests"]
        }
    return texts


def test_short_links_take_the_sample_texts_to_fewer_segments(
    tmp_path: Path, settings: Settings, ledger: Ledger
) -> None:
    """README "Did it work?": each sample text is 2 segments with full URLs, 1 with short links; the staff story
    keeps its first sentence whole, the invitation its whole wording, and both the prefix and the STOP footer."""
    full = load_settings(write_config(tmp_path / "full", {"links": "off"}))
    full_ledger = Ledger(full.ledger_url())
    try:
        before = sms_texts(full, full_ledger)
    finally:
        full_ledger.close()
    after = sms_texts(settings, ledger)
    assert {name: sms_measure(text).segments for name, text in before.items()} == {"sms": 2, "reactivation-text": 2}
    assert {name: sms_measure(text).segments for name, text in after.items()} == {"sms": 1, "reactivation-text": 1}
    links = {name: (before[name].split()[-6], text.split()[-6]) for name, text in after.items()}
    for name, (long_link, short_link) in links.items():
        assert long_link.startswith("https://www.oakviewpt.com/") and SHORT.fullmatch(short_link)
        assert after[name].startswith("Oakview PT: ") and after[name].endswith(f" {short_link} Reply STOP to opt out")
    assert "joined Oakview Physical Therapy. https://" in after["sms"]
    long_link, short_link = links["reactivation-text"]
    assert after["reactivation-text"].replace(short_link, "") == before["reactivation-text"].replace(long_link, "")


@pytest.mark.parametrize(
    ("agent", "expected"),
    [(PERSON, ("person", "mobile")), *[(agent, ("preview", name)) for agent, name in FETCHERS.items()]],
)
def test_user_agents_are_classed(agent: str, expected: tuple[str, str]) -> None:
    assert classify(agent) == expected


def test_links_off_in_bare_yaml_and_a_bad_domain_named(tmp_path: Path) -> None:
    file = write_config(tmp_path)
    file.write_text(file.read_text() + "links: off\n")
    assert load_settings(file).links is None
    file.write_text(file.read_text().replace("links: off\n", "links: {domain: https://go.oakviewpt.com}\n"))
    with pytest.raises(ConfigError, match=r"links\.domain"):
        load_settings(file)


def test_newsletter_recipients_get_codes_of_their_own_when_the_practice_opts_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINKS_SMTP_PASSWORD", "links-smtp-password")
    monkeypatch.setenv("LINKS_UNSUBSCRIBE_SECRET", "links-unsubscribe-secret")
    with SmtpServer(password="links-smtp-password") as smtp:
        credentials = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "username": "carecast"}
        newsletter = {
            "credentials": credentials | {"password": {"env": "LINKS_SMTP_PASSWORD"}},
            "unsubscribe_secret": {"env": "LINKS_UNSUBSCRIBE_SECRET"},
        }
        changes = {"links": {"domain": DOMAIN, "email_per_recipient": True}, "channels": {"newsletter": newsletter}}
        settings = load_settings(write_config(tmp_path, changes))
        ledger = Ledger(settings.ledger_url())
        try:
            pipeline.sync_audience(settings, ledger)
            for source in settings.sources:
                pipeline.ingest(settings, ledger, source)
            pipeline.adapt(settings, ledger, "newsletter")
            [outcome] = pipeline.publish(settings, ledger, "newsletter")
            assert outcome.state == "published", outcome.detail
            texts = {
                message.rcpt_tos[0]: "\n".join(
                    str(part.get_content()) for part in message.parsed().walk() if part.get_content_maintype() == "text"
                )
                for message in smtp.messages
            }
            assert len(texts) >= 2
            codes = {address: set(SHORT.findall(text)) for address, text in texts.items()}
            first, second = list(codes)[:2]
            assert codes[first] and not codes[first] & codes[second]
            targets = {address: {ledger.short_link(code).target for code in found} for address, found in codes.items()}  # type: ignore[union-attr]
            assert targets[first] == targets[second]
            assert all(address not in " ".join(found) for address, found in codes.items())
            one = sorted(codes[first])[0]
            link = ledger.short_link(one)
            assert link is not None
            now = now_utc()
            ledger.record_clicks([(link.id, "person", "mobile", now), (link.id, "person", "desktop", now)])
            built = report.build(settings, ledger, now - timedelta(days=1), now + timedelta(minutes=1))
            [row] = [row for row in built.rows if row.item_id == link.item_id]
            assert row.people == 1  # one person, twice
        finally:
            ledger.close()


def test_the_link_and_metric_records_on_both_databases(ledger_url: str, tmp_path: Path) -> None:
    """Short links, clicks, per-recipient codes and provider readings on SQLite and PostgreSQL alike."""
    ledger = Ledger(ledger_url)
    try:
        target = "https://www.oakviewpt.com/blog/desk?utm_source=x&utm_medium=social&utm_campaign=oakview_blog"
        code = ledger.short_code("rss:blog:desk", "x", target)
        assert ledger.short_code("rss:blog:desk", "x", target) == code  # made once
        assert ledger.short_code("rss:blog:desk", "mastodon", target) != code  # one per channel
        link = ledger.short_link(code)
        assert link is not None and (link.item_id, link.channel, link.target) == ("rss:blog:desk", "x", target)
        assert ledger.short_link("Zz9-none") is None
        at = datetime(2026, 12, 8, 18, 0, tzinfo=UTC)
        ledger.record_clicks([(link.id, "person", "mobile", at), (link.id, "preview", "Slackbot", at)])
        assert [(c.kind, c.agent, c.item_id, c.channel, c.at) for c in ledger.clicks()] == [
            ("person", "mobile", "rss:blog:desk", "x", at),
            ("preview", "Slackbot", "rss:blog:desk", "x", at),
        ]
        assert ledger.clicks(at + timedelta(seconds=1)) == []

        pipeline_settings = load_settings(write_config(tmp_path))
        ledger.save_subscribers("newsletter", load_audience(pipeline_settings.path("audience"), "newsletter"))
        addresses = [subscriber.address for subscriber in ledger.subscribers("newsletter")][:2]
        personal = ledger.recipient_codes([code], "newsletter", [*addresses, "nobody@example.com"])
        assert set(personal) == {(code, address) for address in addresses}
        assert len(set(personal.values()) | {code}) == 3
        assert ledger.recipient_codes([code], "newsletter", addresses) == personal  # made once

        item = ContentItem(
            id="rss:blog:desk",
            source="blog",
            kind="post",
            title="Desk",
            url="https://www.oakviewpt.com/blog/desk",
            summary_html="<p>Desk</p>",
            summary_text="Desk",
            published=at,
            content_hash=content_hash("desk"),
        )
        ledger.upsert_items([item])
        draft_id = ledger.save_draft(Draft("x", (item.id,), ("Desk",)), "@OakviewPT", "approved")
        publication = ledger.claim(draft_id)
        ledger.save_metrics(publication, "1800000000000000001", {"like_count": 3}, {})
        ledger.save_metrics(publication, "1800000000000000001", {"like_count": 5}, {"impressions": "retired"})
        [reading] = ledger.metrics([publication])
        assert (reading.numbers, reading.problems) == ({"like_count": 5}, {"impressions": "retired"})
    finally:
        ledger.close()
