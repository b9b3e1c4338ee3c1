"""Audiences: the sample practice's referring providers and discharged patients, read through their column
mappings, addressed by their own channels, each person reached once a period, opt-outs honoured across audiences.

Real parts only: the sample config copied into ``tmp_path``, a real SQLite ledger, the Twilio and SMTP fakes of
``tests/providers``, and the webhooks served on 127.0.0.1.
"""

from __future__ import annotations

import csv
import threading
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from dateutil.relativedelta import relativedelta

from carecast import pipeline
from carecast.audit import audit
from carecast.compliance import handle_inbound
from carecast.config import Settings
from carecast.errors import ConfigError
from carecast.ledger import Ledger
from carecast.model import Draft
from carecast.practice import load_settings
from carecast.recipients import chosen_by_care, recipients
from carecast.webhooks import WebhookApp, make_server
from tests.conftest import write_config
from tests.discharged import Export, write_export
from tests.factories import make_item
from tests.providers.smtp import SmtpServer
from tests.providers.twilio import TwilioCredentials, TwilioServer, twilio_signature

TOKEN = "tok-audiences-0c1d2e3f4a5b6c7d8e9f"
TWILIO = TwilioCredentials(auth_token=TOKEN)
SMTP_PASSWORD = "smtp-audiences-pw"
UNSUBSCRIBE_SECRET = "unsub-audiences-hmac-key"
#: Tuesday 2026-12-01 17:00 UTC, 11:00 in Chicago: Q4, every quiet-hours window open.
Q4 = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
#: Tuesday 2027-01-05 17:00 UTC: the next quarter.
Q1 = datetime(2027, 1, 5, 17, 0, tzinfo=UTC)
OTHERS = ["newsletter", "provider-update", "reactivation-email", "x", "sms", "mastodon"]
MARIA_SMS = "+13125550117"
MARIA_EMAIL = "maria.gonzalez@example.com"
CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture(autouse=True)
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("CARECAST_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("CARECAST_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)


def local(moment: datetime) -> date:
    """The sample practice's local date at ``moment``."""
    return moment.astimezone(CHICAGO).date()


def run(settings: Settings, ledger: Ledger, now: datetime) -> list[pipeline.Outcome]:
    """One run as ``carecast run`` makes it, at ``now``."""
    pipeline.sync_audience(settings, ledger)
    for source in settings.sources:
        assert pipeline.ingest(settings, ledger, source, now=now).error is None
    outcomes: list[pipeline.Outcome] = []
    for channel in pipeline.channel_names(settings):
        outcomes += pipeline.adapt(settings, ledger, channel, now=now)
        outcomes += pipeline.publish(settings, ledger, channel, now=now)
    return outcomes


def said(error: ConfigError) -> dict[str, str]:
    """Each key's problems, joined."""
    joined: dict[str, str] = {}
    for key, expectation in error.problems:
        joined[key] = f"{joined[key]}; {expectation}" if key in joined else expectation
    return joined


def test_audience_mistakes_name_the_file_the_key_and_what_is_expected(tmp_path: Path) -> None:
    changes: dict[str, Any] = {
        "audiences": {
            "providers": {
                "kind": "providers",
                "files": [{"file": "audience/referring-providers.csv", "columns": {"email": "E-mail"}}],
            },
            "discharged": {"segments": {"recent": {"discharged_after": "soon"}}, "colour": "blue"},
        },
        "channels": {
            "provider-update": {"audience": "referrers"},
            "reactivation-text": {"audience": "providers", "segment": None},
            "x": {"segment": "recent"},
        },
    }
    with pytest.raises(ConfigError) as raised:
        load_settings(write_config(tmp_path, changes))
    problems = said(raised.value)
    assert str(raised.value.file).endswith("carecast.yaml")
    assert "unknown key" in problems["audiences.discharged.colour"]
    assert "'3 months'" in problems["audiences.discharged.segments.recent.discharged_after"]
    changes["audiences"]["discharged"] = {}
    with pytest.raises(ConfigError) as raised:
        load_settings(write_config(tmp_path / "again", changes))
    problems = said(raised.value)
    assert "'E-mail'" in problems["audiences.providers.files.0.columns.email"]
    assert "one of the audiences" in problems["channels.provider-update.audience"]
    assert "express written consent" in problems["channels.reactivation-text.audience"]
    assert problems["channels.x.segment"] == "goes with an audience"


@pytest.fixture(scope="module")
def export_20k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Export]:
    """The sample config with a 20,000-row discharged-patients export and a 40-provider list in its audience."""
    project = tmp_path_factory.mktemp("practice")
    file = write_config(project)
    export = write_export(file.parent / "audience", 20_000, local(Q4))
    return file, export


def window(today: date) -> tuple[date, date]:
    """The sample segment three-to-twelve-months on ``today``: discharged 12 to 3 months before."""
    return today - relativedelta(months=12), today - relativedelta(months=3)


def test_a_20000_row_export_is_streamed_through_its_mapping(export_20k: tuple[Path, Export], tmp_path: Path) -> None:
    file, export = export_20k
    settings = load_settings(file)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.suppress("sms", next(iter(export.discharged)), "opted_out", "STOP")  # a STOP to the practice's number
    tracemalloc.start()
    try:
        addressed = Counter[str]()
        reachable = set()
        reasons: dict[str, str] = {}
        for person in recipients(
            settings, ledger, "reactivation-text", "sms", "discharged", "three-to-twelve-months", local(Q4)
        ):
            addressed[person.address] += 1
            if person.can_receive:
                reachable.add(person.address)
            else:
                reasons[person.address] = person.exclusion_reason or ""
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        ledger.close()
    stopped = next(iter(export.discharged))
    expected = export.eligible(*window(local(Q4))) - {stopped}
    assert reachable == expected and len(expected) > 5000
    assert max(addressed.values()) == 1
    assert not reachable & (export.opted_out | export.no_consent | export.providers_phones)
    assert {reasons[phone] for phone in export.opted_out if phone in reasons} == {"status is opted_out"}
    assert {reasons[phone] for phone in export.no_consent if phone in reasons} == {"no consent on file"}
    shared = [
        phone
        for phone in addressed
        if phone in export.providers_phones or export.emails[phone] in export.providers_emails
    ]
    assert {reasons[phone] for phone in shared} <= {"in the providers audience"}
    # Streamed: a few addresses' worth of memory, not the 20,000 rows (about 7 MB as read rows).
    assert peak < 6_000_000, f"peak {peak / 1e6:.1f} MB"


def test_the_reactivation_reaches_each_eligible_person_once_a_quarter(
    export_20k: tuple[Path, Export], tmp_path: Path
) -> None:
    file, export = export_20k
    with TwilioServer(credentials=TWILIO) as twilio:
        credentials = {
            "account_sid": TWILIO.account_sid,
            "auth_token": {"env": "TWILIO_AUTH_TOKEN"},
            "api_base": twilio.url,
        }
        channels: dict[str, Any] = {name: {"enabled": False} for name in OTHERS}
        channels["reactivation-text"] = {"credentials": credentials, "rate": "2000/s", "concurrency": 8}
        ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
        config = yaml_copy(file, tmp_path, {"channels": channels, "ledger": {"url": ledger_url, "delivery_chunk": 250}})
        settings = load_settings(config)
        ledger = Ledger(ledger_url)
        try:
            first = run(settings, ledger, Q4)
            texted_q4 = Counter(message["to"] for message in twilio.messages)
            second = run(settings, ledger, Q4.replace(hour=20))
            assert len(twilio.messages) == sum(texted_q4.values()), "a second run in the quarter sends nothing"
            stopped = sorted(texted_q4)[0]
            assert handle_inbound(ledger, settings.practice, stopped, "STOP")
            run(settings, ledger, Q1)
        finally:
            ledger.close()
        texted = Counter(message["to"] for message in twilio.messages)
    assert [o.state for o in first if o.channel == "reactivation-text"] == ["published"]
    assert [o for o in second if o.state in ("published", "retry", "failed")] == []
    assert set(texted_q4) == export.eligible(*window(local(Q4))) and max(texted_q4.values()) == 1
    texted_q1 = texted - texted_q4
    assert set(texted_q1) == export.eligible(*window(local(Q1))) - {stopped}
    assert max(texted_q1.values()) == 1, "once a quarter"
    assert not set(texted) & (export.opted_out | export.no_consent | export.providers_phones)


def yaml_copy(file: Path, tmp_path: Path, changes: dict[str, Any]) -> Path:
    """A copy of the practice at ``file`` (with its audience files) under ``tmp_path``, ``changes`` applied."""
    import shutil

    import yaml

    from tests.conftest import _merge

    target = tmp_path / "config"
    shutil.copytree(file.parent, target)
    data = yaml.safe_load((target / "carecast.yaml").read_text())
    _merge(data, changes)
    (target / "carecast.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return target / "carecast.yaml"


class Practice:
    """The sample practice with its newsletters sent to the SMTP fake and its texts to the Twilio fake, Maria on
    the provider list and in the discharged export too, and its webhooks served on 127.0.0.1."""

    def __init__(self, tmp_path: Path, smtp: SmtpServer, twilio: TwilioServer) -> None:
        ca_file = tmp_path / "smtp-ca.pem"
        ca_file.write_bytes(smtp.ca_pem())
        mail = {
            "host": smtp.host,
            "port": smtp.port,
            "security": "starttls",
            "username": smtp.username,
            "password": {"env": "CARECAST_SMTP_PASSWORD"},
            "ca_file": str(ca_file),
        }
        newsletter = {
            "credentials": mail,
            "unsubscribe_secret": {"env": "CARECAST_UNSUBSCRIBE_SECRET"},
            "rate": "1000/s",
            "schedule": [],
        }
        texts = {
            "credentials": {
                "account_sid": TWILIO.account_sid,
                "auth_token": {"env": "TWILIO_AUTH_TOKEN"},
                "api_base": twilio.url,
            },
            "rate": "1000/s",
        }
        channels: dict[str, Any] = {name: {"enabled": False} for name in ("x", "mastodon")}
        channels |= {name: newsletter for name in ("newsletter", "provider-update", "reactivation-email")}
        channels |= {name: texts for name in ("sms", "reactivation-text")}
        file = write_config(tmp_path, {"channels": channels, "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"}})
        audience = file.parent / "audience"
        with (audience / "referring-providers.csv").open("a", newline="") as stream:
            csv.writer(stream).writerow(["Maria Gonzalez, PT", "Oakview PT", MARIA_EMAIL, "Orthopedics", ""])
        self.settings = load_settings(file)
        self.ledger = Ledger(self.settings.ledger_url())
        self.smtp, self.twilio = smtp, twilio

    def emails(self, list_name: str) -> set[str]:
        return {
            address
            for message in self.smtp.messages
            if list_name in message.parsed()["List-Id"]
            for address in message.rcpt_tos
        }


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[Practice]:
    with (
        SmtpServer(password=SMTP_PASSWORD, starttls=True, cert_dir=tmp_path) as smtp,
        TwilioServer(credentials=TWILIO) as twilio,
    ):
        made = Practice(tmp_path, smtp, twilio)
        yield made
        made.ledger.close()


def test_the_patient_newsletter_and_the_provider_update_go_to_their_own_lists(practice: Practice) -> None:
    outcomes = run(practice.settings, practice.ledger, Q4)
    published = Counter(o.channel for o in outcomes if o.state == "published")
    assert published["newsletter"] == published["provider-update"] == 1
    patients = practice.emails("Oakview PT Newsletter")
    providers = practice.emails("Oakview PT Provider Update")
    assert providers == {
        "aruiz@lakevieworthoexample.com",
        "referrals@northsidefmexample.com",
        "ohaddad@lpsportsmedexample.com",
        "hbrooks@chineuroexample.com",
        "kalvarez@lakevieworthoexample.com",
        MARIA_EMAIL,  # on both lists: one message from each
    }
    assert MARIA_EMAIL in patients and not (patients - {MARIA_EMAIL}) & providers
    subjects = {message.parsed()["Subject"].split(":")[0] for message in practice.smtp.messages}
    assert {"Oakview PT", "Oakview PT Provider Update"} <= subjects
    update = next(m.parsed() for m in practice.smtp.messages if "Provider Update" in m.parsed()["List-Id"])
    plain = update.get_body(("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "How to refer" in text and "+1 312 555 0143" in text and "Outcomes" in text
    # The reactivation email: the discharged segment, never a provider's address.
    reactivated = practice.emails("Oakview PT Check-ins")
    assert reactivated == {"nora.feld@example.com", "victor.osei@example.net"}
    rows = [row for row in audit(practice.settings, practice.ledger) if row.event == "message"]
    assert rows and all(row.audience for row in rows)
    by_channel = {(row.channel, row.audience) for row in rows}
    assert ("provider-update", "providers") in by_channel
    assert ("reactivation-email", "discharged / three-to-twelve-months") in by_channel
    assert ("newsletter", "audience/newsletter.csv") in by_channel
    assert ("reactivation-text", "discharged / three-to-twelve-months") in by_channel
    sent = len(practice.smtp.messages)
    again = run(practice.settings, practice.ledger, Q4.replace(hour=20))
    assert [o for o in again if o.state == "published"] == [] and len(practice.smtp.messages) == sent


@contextmanager
def serve(practice: Practice) -> Iterator[str]:
    """The practice's webhooks on 127.0.0.1, their base URL."""
    server = make_server(WebhookApp(practice.settings, practice.ledger), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_unsubscribe_stops_its_list_and_all_email_stops_every_list(practice: Practice) -> None:
    settings, ledger = practice.settings, practice.ledger
    pipeline.sync_audience(settings, ledger)
    update_token = ledger.issue_unsubscribe_token(
        "newsletter:provider-update", "oakview-pt-provider-update", MARIA_EMAIL
    )
    patient_token = ledger.issue_unsubscribe_token("newsletter", "oakview-pt-newsletter", MARIA_EMAIL)

    def reached(channel: str) -> bool:
        config = settings.channels[channel]
        people = recipients(settings, ledger, channel, "newsletter", config.audience, config.segment, local(Q4))
        return any(person.address == MARIA_EMAIL and person.can_receive for person in people)

    assert reached("provider-update") and reached("newsletter")
    with serve(practice) as base:
        one_click = requests.post(
            f"{base}/unsubscribe?t={update_token}", data={"List-Unsubscribe": "One-Click"}, timeout=10
        )
        assert one_click.status_code == 200 and "oakview-pt-provider-update" in one_click.text
        assert not reached("provider-update") and reached("newsletter"), "only the provider update's list"
        page = requests.get(f"{base}/unsubscribe?t={patient_token}", timeout=10)
        assert "all email" in page.text
        everything = requests.post(f"{base}/unsubscribe?t={patient_token}", data={"all_email": "yes"}, timeout=10)
        assert everything.status_code == 200 and "no more emails" in everything.text
    assert not reached("provider-update") and not reached("newsletter")
    opt_outs = [(row.audience, row.status) for row in audit(settings, ledger, MARIA_EMAIL) if row.event == "opt-out"]
    assert sorted(opt_outs) == [("all email", "unsubscribed"), ("provider-update list", "unsubscribed")]


def test_a_stop_stops_every_audiences_texts_from_that_number(practice: Practice) -> None:
    settings, ledger = practice.settings, practice.ledger
    export = settings.path("audience/discharged-patients.csv")
    with export.open("a", newline="") as stream:
        consent = [
            "2025-06-01T09:00:00-05:00",
            "intake form (signed)",
            "I agree to marketing texts. Reply STOP to opt out.",
        ]
        csv.writer(stream).writerow(
            [1, "Maria", "Gonzalez", "", MARIA_SMS, "06/01/2026", *consent, "subscribed", "America/Chicago"]
        )
    pipeline.sync_audience(settings, ledger)

    def texted(channel: str) -> bool:
        config = settings.channels[channel]
        people = recipients(settings, ledger, channel, "sms", config.audience, config.segment, local(Q4))
        return any(person.address == MARIA_SMS and person.can_receive for person in people)

    assert texted("sms") and texted("reactivation-text")
    params = {"From": MARIA_SMS, "To": "+13125550100", "Body": "STOP", "MessageSid": "SM" + "1" * 32}
    with serve(practice) as base:
        url = f"{base}/twilio/inbound"
        reply = requests.post(
            url, data=params, headers={"X-Twilio-Signature": twilio_signature(TOKEN, url, params)}, timeout=10
        )
        assert reply.status_code == 200
    assert not texted("sms") and not texted("reactivation-text")
    run(settings, ledger, Q4)
    assert MARIA_SMS not in {message["to"] for message in practice.twilio.messages}


def test_a_reactivation_that_names_a_condition_is_held_and_sent_to_nobody(tmp_path: Path) -> None:
    wording = "It's been a while since your rotator cuff repair. Book a check-in visit."
    channels = {name: {"enabled": False} for name in OTHERS if name != "reactivation-email"}
    file = write_config(tmp_path, {"sources": {"reactivation": {"text": wording}}, "channels": channels})
    settings = load_settings(file)
    ledger = Ledger(settings.ledger_url())
    try:
        outcomes = run(settings, ledger, Q4)
    finally:
        ledger.close()
    held = [o for o in outcomes if o.channel in ("reactivation-text", "reactivation-email")]
    assert [o.state for o in held] == ["held", "held"], held
    assert all('"rotator cuff"' in o.detail for o in held)
    assert not (settings.path(settings.outbox) / "reactivation-text").exists()
    # The same words in a post for everyone name no one's care: the patient newsletter is not held for them.
    assert chosen_by_care(settings, "newsletter") is False and chosen_by_care(settings, "reactivation-text")


def test_the_ledger_keeps_each_publications_audience_and_scoped_opt_outs(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    try:
        item = make_item(audiences=("providers",))
        ledger.upsert_items([item])
        draft = Draft(channel="provider-update", item_ids=(item.id,), parts=("text",))
        publication = ledger.claim(ledger.save_draft(draft, "default", "approved"))
        ledger.record_selection(publication, "discharged", "three-to-twelve-months")
        ledger.record_selection(publication, "providers", None)  # a resumed fan-out keeps the first
        assert ledger.selections() == {publication: ("discharged", "three-to-twelve-months")}
        ledger.suppress("newsletter:provider-update", MARIA_EMAIL, "unsubscribed", "one list")
        ledger.suppress("sms", MARIA_SMS, "opted_out", "STOP")
        assert ledger.suppressed(["newsletter", "newsletter:provider-update"]) == {MARIA_EMAIL: "unsubscribed"}
        assert ledger.suppressed(["newsletter", "newsletter:newsletter"]) == {}
        assert ledger.suppressed(["sms", "sms:reactivation-text"]) == {MARIA_SMS: "opted_out"}
        [stored] = ledger.items([item.id])
        assert stored.audiences == ("providers",)  # an item's audiences survive the ledger
    finally:
        ledger.close()


@pytest.mark.parametrize(
    ("observance", "day", "reaches"),
    [
        # National PT Month is for everyone: the provider update too.
        ("pt-month", date(2026, 10, 5), {"newsletter", "provider-update", "x", "sms", "mastodon", "linkedin"}),
        # Patient Recognition Week: the patients' lists and the public, not the referring providers.
        ("patient-recognition-week", date(2026, 2, 2), {"newsletter", "x", "sms", "mastodon", "linkedin"}),
    ],
)
def test_observances_reach_the_audiences_they_name(observance: str, day: date, reaches: set[str]) -> None:
    from carecast.audiences import routed_to
    from carecast.sources import read_source

    settings = load_settings(Path(__file__).parents[1] / "config" / "carecast.yaml")
    items = read_source("observances", settings.sources["observances"], settings, today=day).items
    [item] = [item for item in items if item.id.startswith(f"observance:{observance}:")]
    routed = {
        name
        for name, config in settings.channels.items()
        if routed_to(item.audiences, item.tags, settings.audiences, config.type, config.audience)
        and (config.sources is None or "observances" in config.sources)
    }
    assert routed == reaches


def test_items_for_providers_and_the_reactivation_stay_off_the_other_lists(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path))
    ledger = Ledger(settings.ledger_url())
    try:
        outcomes = run(settings, ledger, Q4)
        published = {(row.channel, item_id) for row in ledger.publications() for item_id in row.item_ids}
    finally:
        ledger.close()
    assert [o for o in outcomes if o.state in ("failed", "retry", "rejected", "held")] == []
    for_providers = {"md:stories:2026-11-16-q3-outcomes", "md:stories:2026-11-23-vestibular-program"}
    assert {item for channel, item in published if channel == "provider-update"} == for_providers
    elsewhere = {item for channel, item in published if channel != "provider-update"}
    assert not elsewhere & for_providers
    reactivation = {item for item in elsewhere if item.startswith("campaign:")}
    assert reactivation == {"campaign:reactivation:2026-Q4"}
    assert {channel for channel, item in published if item in reactivation} == {
        "reactivation-email",
        "reactivation-text",
    }


def test_a_feed_category_an_audience_lists_routes_a_post_to_it() -> None:
    from carecast.audiences import routed_to

    settings = load_settings(Path(__file__).parents[1] / "config" / "carecast.yaml")

    def reaches(tags: tuple[str, ...], audiences: tuple[str, ...] = ()) -> set[str]:
        return {
            name
            for name, config in settings.channels.items()
            if routed_to(audiences, tags, settings.audiences, config.type, config.audience)
        }

    # A post with the providers' category (any case) goes to them alone; any other post to all but providers.
    assert reaches(("Research", "forreferringproviders")) == {"provider-update"}
    assert "provider-update" not in reaches(("ClinicNews",))
    assert reaches(("ClinicNews",)) >= {"newsletter", "x", "sms", "mastodon"}
    # Front matter names audiences by name or kind; `all` is everyone.
    assert reaches((), ("discharged",)) == {"reactivation-email", "reactivation-text"}
    assert reaches((), ("all",)) == set(settings.channels)
