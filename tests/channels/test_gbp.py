"""The Google Business Profile channel: what a local post holds (topic, event, offer, call to action, media, no
phone number, 1,500 characters), the outbox, and the live transport against the local Business Profile API and
token endpoint: a post lands once, a rerun sends nothing, rate limits are waited out, a refused refresh token is a
credential error naming the channel, a lost answer is never posted again, and no secret leaks."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carecast import pipeline
from carecast.errors import ConfigError, CredentialError, PublishError, RenderError
from carecast.ledger import Ledger
from carecast.model import Draft
from carecast.practice import load_settings
from carecast_channels.gbp import GbpChannel
from tests.channels.conftest import Publications, outbox_context, run_channel
from tests.conftest import commented_channels, write_config
from tests.factories import make_item, make_observance
from tests.providers import RecordedRequest, Reply
from tests.providers.gbp import GbpAccount, GbpServer

# Distinct values, so a leak of either anywhere is found by a plain substring search.
ACCOUNT = GbpAccount(client_secret="gcs-81f2a9-leak-canary", refresh_token="1//grt-6d03be-leak-canary")
ENV = {"GBP_CLIENT_SECRET": ACCOUNT.client_secret, "GBP_REFRESH_TOKEN": ACCOUNT.refresh_token}
TAGGED = "https://www.oakviewpt.com/blog/desk-stretches?utm_source=gbp&utm_medium=organic&utm_campaign=oakview_blog"


def channel(tmp_path: Path, **changes: Any) -> GbpChannel:
    """The sample config's (commented-out) gbp channel, with ``changes`` to its section."""
    sample = commented_channels()
    sample["channels"]["gbp"].update(changes)
    settings = load_settings(write_config(tmp_path, sample))
    return GbpChannel("gbp", settings.channels["gbp"], settings)


def credentials(server: GbpServer, **changes: Any) -> dict[str, Any]:
    return {
        "client_id": server.account.client_id,
        "client_secret": {"env": "GBP_CLIENT_SECRET"},
        "refresh_token": {"env": "GBP_REFRESH_TOKEN"},
        "token_uri": server.token_uri,
        **changes,
    }


def live(tmp_path: Path, server: GbpServer, **changes: Any) -> GbpChannel:
    return channel(tmp_path, api_base=server.url, credentials=credentials(server), **changes)


@pytest.fixture(autouse=True)
def credentials_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in ENV.items():
        monkeypatch.setenv(variable, value)


@pytest.fixture
def server() -> Iterator[GbpServer]:
    with GbpServer(ACCOUNT) as running:
        yield running


# -- what a post holds -----------------------------------------------------------------------------------------------


def test_a_blog_post_is_a_standard_post_that_learns_more_at_its_tagged_link(tmp_path: Path) -> None:
    gbp = channel(tmp_path)
    draft = gbp.render([make_item(image_url="https://www.oakviewpt.com/images/stretch.jpg")])

    assert draft.parts == (
        "Five stretches for desk workers\n\nSitting all day? These five stretches take ten minutes.",
    )
    assert gbp.request_body(draft) == {
        "languageCode": "en-US",
        "summary": draft.parts[0],
        "topicType": "STANDARD",
        "callToAction": {"actionType": "LEARN_MORE", "url": TAGGED},
        "media": [{"mediaFormat": "PHOTO", "sourceUrl": "https://www.oakviewpt.com/images/stretch.jpg"}],
    }


def test_an_observance_is_an_event_from_its_first_to_its_last_day(tmp_path: Path) -> None:
    # Published at the observance's first day, midnight in Chicago (06:00 UTC).
    observance = make_observance(published=datetime(2026, 2, 1, 6, 0, tzinfo=UTC), last_day=date(2026, 2, 7))
    gbp = channel(tmp_path)
    body = gbp.request_body(gbp.render([observance]))

    assert body["topicType"] == "EVENT"
    assert body["event"] == {
        "title": "National Patient Recognition Week",
        "schedule": {
            "startDate": {"year": 2026, "month": 2, "day": 1},
            "endDate": {"year": 2026, "month": 2, "day": 7},
        },
    }
    assert body["summary"] == observance.summary_text  # the event shows the title; the text does not repeat it
    # An observance without a page of its own leads to the practice's site, tagged with its campaign.
    assert body["callToAction"]["url"].startswith("https://www.oakviewpt.com/?utm_source=gbp&utm_medium=organic")


def test_an_item_tagged_offer_is_an_offer_redeemed_at_its_link_without_a_button(tmp_path: Path) -> None:
    gbp = channel(tmp_path, offer_days=14)
    body = gbp.request_body(gbp.render([make_item(tags=("offer",))]))

    assert body["topicType"] == "OFFER"
    assert body["offer"] == {"redeemOnlineUrl": TAGGED}
    assert body["event"]["schedule"]["endDate"] == {"year": 2026, "month": 3, "day": 15}
    assert "callToAction" not in body  # Google ignores it on an offer


@pytest.mark.parametrize(
    ("changes", "button"),
    [
        ({"call_to_action": "CALL"}, {"actionType": "CALL"}),
        ({"call_to_action": "BOOK"}, {"actionType": "BOOK", "url": "https://www.oakviewpt.com/book"}),
        ({"call_to_action": "BOOK", "booking_url": None}, {"actionType": "BOOK", "url": TAGGED}),
    ],
)
def test_the_button_calls_books_or_learns_more(tmp_path: Path, changes: dict[str, Any], button: dict[str, str]) -> None:
    gbp = channel(tmp_path, **changes)
    assert gbp.request_body(gbp.render([make_item()]))["callToAction"] == button


def test_a_phone_number_is_taken_out_with_the_reason_or_refused(tmp_path: Path) -> None:
    item = make_item(summary="Call (312) 555-0142 to book your first visit. Sitting all day? Stretch.")
    draft = channel(tmp_path / "strip").render([item])
    refuse = channel(tmp_path / "refuse", phone_numbers="refuse")

    assert draft.parts[0].endswith("\n\nCall to book your first visit. Sitting all day? Stretch.")
    assert draft.measures["notes"] == [
        "removed 1 phone number(s): Google refuses a post with a phone number in its text; the CALL button dials "
        "the practice"
    ]
    with pytest.raises(RenderError, match=r"phone number.*CALL button"):
        refuse.render([item])
    assert "removed 1 phone number(s)" in pipeline.describe_measures(draft)  # the preview staff approve from


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (
            "Want a look at your setup? Call us at (312) 555-0142 or email the front desk.",
            "Want a look at your setup? Email the front desk.",
        ),
        ("Call the front desk at 312-555-0142 or email us today.", "Email us today."),
        ("Para una cita, llame al 312-555-0142. Le esperamos.", "Para una cita. Le esperamos."),
        (
            "Wall slide: 3 sets, 10\u201312 reps, rest 45 s. Questions? Phone: 312-555-0142.",
            "Wall slide: 3 sets, 10\u201312 reps, rest 45 s. Questions?",
        ),
    ],
)
def test_a_phone_number_goes_with_the_words_that_introduce_it(tmp_path: Path, summary: str, expected: str) -> None:
    draft = channel(tmp_path).render([make_item(summary=summary)])
    assert draft.parts[0].endswith(f"\n\n{expected}")


def test_a_text_edited_to_hold_a_phone_number_is_refused(tmp_path: Path) -> None:
    gbp = channel(tmp_path)
    draft = gbp.render([make_item()])
    edited = Draft(**{**draft.__dict__, "parts": ("Questions? Call +1 312 555 0142.",)})
    with pytest.raises(RenderError, match="phone number"):
        gbp.enforce(edited)


def test_a_long_summary_is_shortened_to_1500_characters(tmp_path: Path) -> None:
    summary = " ".join(["Thank you for trusting us with your recovery."] * 60)
    [text] = channel(tmp_path).render([make_item(summary=summary)]).parts
    assert 1450 < len(text) <= 1500 and text.endswith("\u2026")


@pytest.mark.parametrize(
    "change",
    [
        {"account_id": "accounts/123"},
        {"call_to_action": "ORDER"},
        {"api_base": "http://mybusiness.example.com"},
        {"credentials": {"client_id": "x", "client_secret": "inline", "refresh_token": {"env": "T"}}},
        {"credentials": {"client_id": "x", "client_secret": {"env": "S"}, "refresh_token": {"env": "T"},
                         "token_uri": "http://oauth.example.com/token"}},
    ],
)  # fmt: skip
def test_config_is_validated(tmp_path: Path, change: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        channel(tmp_path, **change)


def test_the_outbox_holds_the_exact_request(tmp_path: Path) -> None:
    gbp = channel(tmp_path)
    draft = gbp.render([make_item()])
    receipt = gbp.publish(draft, outbox_context(tmp_path / "outbox", 5))

    assert Path(receipt.location) == tmp_path / "outbox" / "gbp" / "000005.json"
    assert json.loads(Path(receipt.location).read_text(encoding="utf-8")) == {
        "endpoint": "POST /v4/accounts/{account}/locations/{location}/localPosts",
        "url": "https://mybusiness.googleapis.com/v4/accounts/1234567890/locations/9876543210/localPosts",
        "account": "Oakview Physical Therapy",
        "request": gbp.request_body(draft),
    }


# -- live, against the local Business Profile API ----------------------------------------------------------------


def test_a_post_lands_once_and_a_rerun_sends_nothing(tmp_path: Path, server: GbpServer, ledger: Ledger) -> None:
    changes = {"sources": ["blog"], "api_base": server.url, "credentials": credentials(server)}
    first = run_channel(tmp_path / "one", ledger, "gbp", **changes)
    asked = len(server.requests)
    second = run_channel(tmp_path / "two", ledger, "gbp", **changes)

    [published] = [o for o in first if o.state == "published"]
    [post] = server.posts
    assert published.detail == post["searchUrl"]
    assert post["topicType"] == "STANDARD" and post["callToAction"]["actionType"] == "LEARN_MORE"
    token, created = server.requests[0], server.requests_to("POST", server.account.posts_path)
    assert token.path == "/token" and token.body["grant_type"] == "refresh_token"
    assert created[0].headers["Authorization"].startswith("Bearer ya29.test-")
    assert [o for o in second if o.state == "published"] == [] and len(server.requests) == asked


def test_media_is_referenced_by_url_and_the_outbox_is_the_request(
    tmp_path: Path, server: GbpServer, publications: Publications
) -> None:
    gbp = live(tmp_path, server)
    draft = gbp.render([make_item(image_url="https://www.oakviewpt.com/images/stretch.jpg")])
    gbp.publish(draft, publications.claim(draft))

    [post] = server.posts
    assert post["media"] == [{"mediaFormat": "PHOTO", "sourceUrl": "https://www.oakviewpt.com/images/stretch.jpg"}]
    # The outbox holds the request Google got.
    offline = channel(tmp_path / "offline").publish(draft, outbox_context(tmp_path / "o", 1))
    [sent] = server.requests_to("POST", server.account.posts_path)
    assert json.loads(Path(offline.location).read_text(encoding="utf-8"))["request"] == sent.body


def test_an_observance_lands_as_an_event(tmp_path: Path, server: GbpServer, publications: Publications) -> None:
    gbp = live(tmp_path, server)
    draft = gbp.render([make_observance(last_day=date(2026, 2, 7))])
    gbp.publish(draft, publications.claim(draft))

    [post] = server.posts
    assert post["topicType"] == "EVENT" and post["event"]["title"] == "National Patient Recognition Week"


def test_a_rate_limit_is_waited_out_and_sent_again(
    tmp_path: Path, server: GbpServer, publications: Publications
) -> None:
    server.throttle(2)  # Google's shape: 429 RESOURCE_EXHAUSTED and no Retry-After: waits 1 s, then 2 s
    draft = live(tmp_path, server).render([make_item()])

    receipt = live(tmp_path / "again", server).publish(draft, publications.claim(draft))

    created = server.requests_to("POST", server.account.posts_path)
    assert len(created) == 3 and len(server.posts) == 1
    assert receipt.provider_ids == (server.posts[0]["name"],)


def test_a_rate_limit_longer_than_the_budget_is_left_for_the_next_run(
    tmp_path: Path, server: GbpServer, publications: Publications
) -> None:
    server.throttle(5)
    gbp = live(tmp_path, server, retry_budget=0)
    draft = gbp.render([make_item()])

    with pytest.raises(PublishError, match="429 RESOURCE_EXHAUSTED") as caught:
        gbp.publish(draft, publications.claim(draft))

    assert caught.value.transient and caught.value.retry_after == 1.0
    assert server.posts == []


def test_a_revoked_refresh_token_is_a_credential_error_naming_the_channel(
    tmp_path: Path, server: GbpServer, publications: Publications
) -> None:
    server.revoke()
    gbp = live(tmp_path, server)
    draft = gbp.render([make_item()])

    with pytest.raises(CredentialError, match=r"channels\.gbp\.credentials.*invalid_grant"):
        gbp.publish(draft, publications.claim(draft))
    with pytest.raises(CredentialError, match=r"channels\.gbp\.credentials"):
        gbp.verify()
    assert server.posts == []


class RefusesEveryToken(GbpServer):
    """Issues access tokens, then refuses them all (401 UNAUTHENTICATED), as Google does for a token it revoked."""

    def handle(self, request: RecordedRequest) -> Reply:
        self.expire_access_tokens()
        return super().handle(request)


def test_a_refused_access_token_is_a_credential_error_naming_the_channel(
    tmp_path: Path, publications: Publications
) -> None:
    with RefusesEveryToken(ACCOUNT) as server:
        gbp = live(tmp_path, server)
        draft = gbp.render([make_item()])
        with pytest.raises(CredentialError, match=r"channels\.gbp\.credentials.*401 UNAUTHENTICATED"):
            gbp.publish(draft, publications.claim(draft))

    assert server.posts == []


def test_a_post_whose_answer_was_lost_is_looked_up_not_posted_again(tmp_path: Path, publications: Publications) -> None:
    with GbpServer(ACCOUNT) as server:
        server.answer_late(lambda request: request.method == "POST" and request.path.endswith("/localPosts"), 1.0)
        gbp = live(tmp_path, server, timeout=0.3)
        draft = gbp.render([make_item()])
        context = publications.claim(draft)
        with pytest.raises(PublishError, match="answered nothing") as caught:
            gbp.publish(draft, context)
        assert server.late is not None
        server.late.join()
        publications.fail(context, caught.value)
        retry = publications.claim(draft)  # the same publication, claimed again
        receipt = gbp.publish(draft, retry)

    [post] = server.posts
    assert caught.value.transient and caught.value.maybe_sent
    assert retry.publication_id == context.publication_id and receipt.provider_ids == (post["name"],)
    assert len(server.requests_to("POST", server.account.posts_path)) == 1


def test_a_refusal_is_permanent_and_names_googles_code(
    tmp_path: Path, server: GbpServer, publications: Publications
) -> None:
    gbp = live(tmp_path, server)
    draft = Draft(channel="gbp", item_ids=("bad",), parts=("x" * 1501,), details={"topicType": "STANDARD"})

    with pytest.raises(PublishError, match="400 INVALID_ARGUMENT") as caught:
        gbp.publish(draft, publications.claim(draft))

    assert not caught.value.transient


def test_verify_reads_the_location_and_warns_before_the_refresh_token_expires(
    tmp_path: Path, server: GbpServer
) -> None:
    soon = (datetime.now(UTC) + timedelta(days=5)).date()
    later = (datetime.now(UTC) + timedelta(days=30)).date()
    warned = channel(
        tmp_path / "soon", api_base=server.url, credentials=credentials(server, refresh_token_expires=soon.isoformat())
    ).verify()
    quiet = channel(
        tmp_path / "later",
        api_base=server.url,
        credentials=credentials(server, refresh_token_expires=later.isoformat()),
    ).verify()

    assert "accounts/1234567890/locations/9876543210 answers" in quiet and "WARNING" not in quiet
    assert f"WARNING: the refresh token expires on {soon.isoformat()}" in warned
    assert server.posts == [] and {r.method for r in server.requests_to("GET", server.account.posts_path)} == {"GET"}


def test_no_secret_appears_in_logs_errors_ledger_or_outbox(
    tmp_path: Path, server: GbpServer, publications: Publications, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gbp = live(tmp_path, server)
    draft = gbp.render([make_item()])
    server.throttle(1)
    receipt = gbp.publish(draft, publications.claim(draft))
    said = gbp.verify()
    server.revoke()
    with pytest.raises(CredentialError) as caught:
        live(tmp_path / "revoked", server).verify()
    offline = channel(tmp_path / "offline").publish(draft, outbox_context(tmp_path / "o", 2))

    texts = [caplog.text, str(caught.value), repr(caught.value), str(receipt.to_json()), said, repr(gbp.config)]
    # Nor does an access token the token endpoint issued (ya29.test-...).
    assert not any(secret in text for secret in [*ENV.values(), "ya29."] for text in texts)
    stored = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    assert Path(offline.location).read_bytes() in stored
    assert not any(secret.encode() in content for secret in ENV.values() for content in stored)


def test_an_unreachable_google_is_transient_and_sends_nothing(tmp_path: Path, publications: Publications) -> None:
    with GbpServer(ACCOUNT) as gone:
        url, named = gone.url, credentials(gone)  # once it stops, nothing listens there
    gbp = channel(tmp_path, api_base=url, credentials=named)
    draft = gbp.render([make_item()])

    with pytest.raises(PublishError, match="token endpoint cannot be reached") as caught:
        gbp.publish(draft, publications.claim(draft))

    assert caught.value.transient
