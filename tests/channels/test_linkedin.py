"""The LinkedIn channel: little-text escaping (what readers see is what was meant), article cards with uploaded
thumbnails, the outbox's exact request, and the live transport against the local LinkedIn API (once only, 401, 429
waited out, token expiry warnings)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carecast.errors import CredentialError
from carecast.ledger import Ledger
from carecast.model import now_utc
from carecast_channels.linkedin import LinkedInChannel, little_text
from tests.channels.conftest import claimed_context, outbox_context, publish_run, sample_channel
from tests.factories import make_item
from tests.providers.images import ImageHost
from tests.providers.linkedin import AUTHOR, LinkedInServer, shown_text, throttled

TOKEN = "AQV-linkedin-leak-canary-0003"


def channel(tmp_path: Path, **changes: Any) -> LinkedInChannel:
    return sample_channel(tmp_path, LinkedInChannel, **changes)


# -- little text -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("Back pain? (Read this)", "Back pain? \\(Read this\\)"),
        ("#PhysicalTherapy #1 clinic", "{hashtag|\\#|PhysicalTherapy} \\#1 clinic"),
        ("a\\b|c{d}e@f[g]h<i>j*k_l~m", "a\\\\b\\|c\\{d\\}e\\@f\\[g\\]h\\<i\\>j\\*k\\_l\\~m"),
        ("#knee_rehab", "{hashtag|\\#|knee\\_rehab}"),
    ],
)
def test_reserved_characters_are_escaped_and_hashtags_templated(text: str, escaped: str) -> None:
    assert little_text(text) == escaped
    assert shown_text(escaped) == text  # what LinkedIn shows is what was meant, nothing cut


def test_unescaped_text_would_be_cut_where_linkedin_cuts_it() -> None:
    # The oracle above can fail: LinkedIn (and its fake) stops at the first unescaped reserved character.
    assert shown_text("Back pain? (Read this)") == "Back pain? "
    assert shown_text("#PhysicalTherapy") == ""


def test_the_limit_is_counted_on_the_escaped_commentary(tmp_path: Path) -> None:
    summary = " ".join(["Knee (ACL) rehab: stage 1 @ home_"] * 200)
    draft = channel(tmp_path).render([make_item(summary=summary)])
    assert len(little_text(draft.parts[0])) <= 3000 < len(little_text(summary))
    assert draft.measures["parts"] == [{"characters": len(little_text(draft.parts[0]))}]


def test_the_outbox_holds_the_exact_request_with_its_headers(tmp_path: Path) -> None:
    linkedin = channel(tmp_path)
    item = make_item(image_url="https://www.oakviewpt.com/images/blog/desk-setup.jpg", image_alt="A desk")
    draft = linkedin.render([item])
    receipt = linkedin.publish(draft, outbox_context(tmp_path / "outbox", 6))
    headers = {"LinkedIn-Version": "202610", "X-Restli-Protocol-Version": "2.0.0"}
    assert json.loads(Path(receipt.location).read_text(encoding="utf-8")) == {
        "account": "Oakview Physical Therapy",
        "image_upload": {
            "endpoint": "POST /rest/images?action=initializeUpload",
            "url": "https://api.linkedin.com/rest/images?action=initializeUpload",
            "headers": headers,
            "request": {"initializeUploadRequest": {"owner": AUTHOR}},
            "then": f"PUT the bytes of {item.image_url} to the uploadUrl it answers",
        },
        "endpoint": "POST /rest/posts",
        "url": "https://api.linkedin.com/rest/posts",
        "headers": headers,
        "request": {
            "author": AUTHOR,
            "commentary": little_text(draft.parts[0]),
            "visibility": "PUBLIC",
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
            "content": {
                "article": {
                    "source": draft.link,
                    "title": "Five stretches for desk workers",
                    "thumbnail": "{image}",
                }
            },
        },
    }
    assert "utm_source=linkedin" in str(draft.link)


# -- live, against the local LinkedIn API ---------------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[LinkedInServer]:
    with LinkedInServer(access_token=TOKEN) as server:
        yield server


@pytest.fixture(autouse=True)
def token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKEDIN_ACCESS_TOKEN", TOKEN)


def live(tmp_path: Path, api: LinkedInServer, **changes: Any) -> LinkedInChannel:
    credentials = {"access_token": {"env": "LINKEDIN_ACCESS_TOKEN"}}
    # The item images of these tests are on a local server: a private address.
    return channel(tmp_path, api_base=api.url, credentials=credentials, image_allow_private=True, **changes)


def test_a_post_lands_once_with_its_thumbnail_uploaded(
    tmp_path: Path, api: LinkedInServer, ledger: Ledger, image_host: ImageHost
) -> None:
    linkedin = live(tmp_path, api)
    title = "Desk work & back pain: (5) fixes_for #Monday"
    ledger.upsert_items([make_item(title=title, image_url=f"{image_host.url}/photo.jpg", image_alt="A desk")])

    [first] = publish_run(linkedin.settings, ledger, "linkedin")
    again = publish_run(linkedin.settings, ledger, "linkedin")

    assert first.state == "published", first.detail
    [post] = api.posts
    assert first.detail == f"https://www.linkedin.com/feed/update/{post.urn}/"
    assert post.shown == first.draft.parts[0]  # type: ignore[union-attr]
    assert post.shown.startswith(title)
    thumbnail = post.body["content"]["article"]["thumbnail"]
    assert api.images[thumbnail].startswith(b"\xff\xd8")  # type: ignore[union-attr]
    assert all(r.headers["LinkedIn-Version"] == "202610" for r in api.requests)
    assert again == [] and len(api.requests_to("POST", "/rest/posts")) == 1


def test_an_image_that_cannot_be_downloaded_is_left_off_and_said(
    tmp_path: Path, api: LinkedInServer, ledger: Ledger, image_host: ImageHost
) -> None:
    linkedin = live(tmp_path, api)
    ledger.upsert_items([make_item(image_url=f"{image_host.url}/gone.jpg")])

    [outcome] = publish_run(linkedin.settings, ledger, "linkedin")

    [post] = api.posts
    assert outcome.state == "published" and "image not attached" in outcome.detail and "HTTP 404" in outcome.detail
    assert "thumbnail" not in post.body["content"]["article"] and api.images == {}


def test_an_expired_token_is_a_credential_error_naming_the_channel(
    tmp_path: Path, api: LinkedInServer, ledger: Ledger
) -> None:
    linkedin = live(tmp_path, api)
    api.expire_token()

    draft = linkedin.render([make_item()])
    with pytest.raises(CredentialError, match=r"channels\.linkedin\.credentials.*401"):
        linkedin.publish(draft, claimed_context(ledger, draft, tmp_path / "outbox"))
    ledger.upsert_items([make_item()])
    [outcome] = publish_run(linkedin.settings, ledger, "linkedin")

    assert outcome.state == "retry" and "channels.linkedin" in outcome.detail and api.posts == []


@pytest.mark.parametrize("retry_after", [90, None])
def test_a_rate_limit_waits_and_then_retries(
    tmp_path: Path, api: LinkedInServer, ledger: Ledger, retry_after: int | None
) -> None:
    linkedin = live(tmp_path, api)
    ledger.upsert_items([make_item()])
    api.force(throttled(retry_after))
    # Without Retry-After LinkedIn's daily quota comes back at midnight UTC.
    tomorrow = (now_utc() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    wait = timedelta(seconds=retry_after) if retry_after else tomorrow - now_utc()

    [limited] = publish_run(linkedin.settings, ledger, "linkedin")
    early = publish_run(linkedin.settings, ledger, "linkedin", now=now_utc() + wait - timedelta(seconds=30))
    [retried] = publish_run(linkedin.settings, ledger, "linkedin", now=now_utc() + wait + timedelta(seconds=5))

    assert limited.state == "retry" and "429" in limited.detail
    assert early == [] and retried.state == "published" and len(api.posts) == 1


def test_verify_proves_the_role_and_warns_before_the_token_expires(tmp_path: Path, api: LinkedInServer) -> None:
    soon = (now_utc() + timedelta(days=5, hours=1)).isoformat()
    said = live(tmp_path, api, token_expires_at=soon).verify()
    assert said.startswith(f"LinkedIn: may post as {AUTHOR} (ADMINISTRATOR); WARNING: the token expires on")
    assert "(in 5 days)" in said

    later = live(tmp_path / "later", api, token_expires_at="2099-01-27").verify()
    assert later.endswith("the token expires on 2099-01-27 00:00 UTC")
    with pytest.raises(CredentialError, match="expired on 2020-01-01"):
        live(tmp_path / "past", api, token_expires_at="2020-01-01").verify()
    assert api.posts == []


def test_the_token_appears_in_no_error_or_outbox(tmp_path: Path, api: LinkedInServer, ledger: Ledger) -> None:
    linkedin = live(tmp_path, api)
    said = linkedin.verify()
    api.expire_token()
    draft = linkedin.render([make_item()])
    with pytest.raises(CredentialError) as caught:
        linkedin.publish(draft, claimed_context(ledger, draft, tmp_path / "outbox"))
    offline = channel(tmp_path / "offline").publish(linkedin.render([make_item()]), outbox_context(tmp_path / "o", 2))

    texts = [said, str(caught.value), repr(linkedin.config), Path(offline.location).read_text()]
    assert not any(TOKEN in text for text in texts)
