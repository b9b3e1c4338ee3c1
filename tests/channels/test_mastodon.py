"""The Mastodon channel: counting as Mastodon does, rendering within 500 characters, the outbox, and the live
transport against a real local instance (mastodon-mock): Idempotency-Key, instance limits, faults, no leaked token."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import ValidationError

from carecast.channel import PublishContext
from carecast.errors import CredentialError, PublishError, RenderError
from carecast.ledger import Ledger, part_address
from carecast.model import Draft
from carecast.practice import load_settings
from carecast_channels.mastodon import MastodonChannel, MastodonConfig, mastodon_length
from tests.channels.conftest import claimed_context, outbox_context
from tests.conftest import write_config
from tests.factories import make_item
from tests.providers.mastodon import MastodonInstance, mastodon_instance

TOKEN = "mt-4c1f9a7e-leak-canary"
LONG_URL = "https://www.oakviewpt.com/blog/" + "a-very-long-path-segment/" * 8


def channel(tmp_path: Path, **changes: Any) -> MastodonChannel:
    settings = load_settings(write_config(tmp_path, {"channels": {"mastodon": changes}}))
    return MastodonChannel("mastodon", settings.channels["mastodon"], settings)


# -- counting and rendering ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("a" * 500, 500),
        (f"Read {LONG_URL} today", len("Read  today") + 23),
        ("Visit oakviewpt.com today", 25),  # a bare domain is no URL on Mastodon
        ("Thanks @maria@pt.example.social and @james!", len("Thanks @maria and @james!")),
        ("\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 caf\u0065\u0301", 6),  # graphemes
        (f"{LONG_URL}@maria@pt.example", 23),  # a mention inside a URL is the URL's
    ],
)
def test_length_as_mastodon_counts_it(text: str, length: int) -> None:
    assert mastodon_length(text) == length


def test_url_weight_is_the_instances() -> None:
    assert mastodon_length(f"x {LONG_URL}", url_weight=30) == 32


def test_short_item_is_one_status_with_tagged_link_and_hashtags(tmp_path: Path) -> None:
    draft = channel(tmp_path).render([make_item()])
    [status] = draft.parts
    assert status.startswith("Five stretches for desk workers\n\nSitting all day?")
    assert "utm_source=mastodon&utm_medium=social&utm_campaign=oakview_blog" in status
    assert status.endswith("#PhysicalTherapy #OakviewPT")
    assert draft.measures["parts"] == [{"characters": mastodon_length(status)}]


def test_long_item_is_shortened_to_500_counting_the_link_as_23(tmp_path: Path) -> None:
    summary = " ".join(["Thank you for trusting us with your recovery."] * 20)
    [status] = channel(tmp_path).render([make_item(summary=summary, url=LONG_URL)]).parts
    assert 480 < mastodon_length(status) <= 500 < len(status)
    assert "recovery.\n\nhttps://" in status and "utm_source=mastodon" in status  # whole sentences, then the link
    # The summary is shortened, not the hashtags dropped: they fit beside the shortened text.
    assert status.endswith("#PhysicalTherapy #OakviewPT")


def test_a_status_says_its_language_from_the_practice(tmp_path: Path) -> None:
    mastodon = channel(tmp_path)
    spanish = MastodonChannel(
        "mastodon",
        mastodon.config,
        mastodon.settings.model_copy(update={"practice": mastodon.practice.model_copy(update={"language": "es"})}),
    )
    for each, language in ((mastodon, "en"), (spanish, "es")):
        receipt = each.publish(each.render([make_item()]), outbox_context(tmp_path / language, 1))
        assert json.loads(Path(receipt.location).read_text(encoding="utf-8"))["request"]["language"] == language


def test_a_link_only_item_has_its_url_once(tmp_path: Path) -> None:
    url = "https://www.oakviewpt.com/blog/new-video"
    [status] = channel(tmp_path).render([make_item(summary=url, title=url, url=url)]).parts
    assert status.count("oakviewpt.com/blog/new-video") == 1


def test_exactly_one_item_and_nothing_that_cannot_fit(tmp_path: Path) -> None:
    mastodon = channel(tmp_path)
    with pytest.raises(RenderError, match="exactly one item"):
        mastodon.render([make_item(), make_item("other")])
    with pytest.raises(RenderError, match="500 characters"):
        mastodon.render([make_item(title="Very long title " * 40)])


@pytest.mark.parametrize(
    "change",
    [
        {"instance_url": "http://mastodon.social"},
        {"instance_url": "http://localhost:3000"},
        {"visibility": "direct"},
        {"credentials": {"access_token": "a-value-not-a-reference"}},
    ],
)
def test_config_is_validated(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        MastodonConfig.model_validate({"type": "mastodon", "instance_url": "https://mastodon.social", **change})


def test_outbox_holds_the_request_body_and_its_idempotency_key(tmp_path: Path) -> None:
    mastodon = channel(tmp_path, visibility="unlisted")
    draft = mastodon.render([make_item()])
    receipt = mastodon.publish(draft, outbox_context(tmp_path / "outbox", 4))
    assert Path(receipt.location) == tmp_path / "outbox" / "mastodon" / "000004.json"
    assert json.loads(Path(receipt.location).read_text(encoding="utf-8")) == {
        "endpoint": "POST /api/v1/statuses",
        "instance": "https://mastodon.social",
        "account": "@oakviewpt@mastodon.social",
        "idempotency_key": f"carecast:mastodon:000004:{draft.key}",
        "request": {"status": draft.parts[0], "visibility": "unlisted", "language": "en"},
    }


# -- live, against a local instance ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instance() -> Iterator[MastodonInstance]:
    with mastodon_instance(access_token=TOKEN) as running:
        yield running


@pytest.fixture(autouse=True)
def token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASTODON_TOKEN", TOKEN)


def live(tmp_path: Path, instance: MastodonInstance, **changes: Any) -> MastodonChannel:
    credentials = {"access_token": {"env": "MASTODON_TOKEN"}}
    return channel(tmp_path, instance_url=instance.url, credentials=credentials, **changes)


def statuses_count(instance: MastodonInstance) -> int:
    account = requests.get(
        f"{instance.url}/api/v1/accounts/verify_credentials", headers=instance.auth_headers(), timeout=5
    )
    return int(account.json()["statuses_count"])


def next_post(instance: MastodonInstance, effect: dict[str, Any]) -> None:
    """Give the next status post mastodon-mock's ``effect`` (those ``MastodonInstance.fault`` does not make)."""
    rule = {"match": {"methods": ["POST"], "path": "/api/v1/statuses"}, "effect": effect, "count": 1}
    requests.post(f"{instance.url}/api/v1/_mock/faults", json=rule, timeout=5).raise_for_status()


def claimed(tmp_path: Path, draft: Draft) -> PublishContext:
    """``draft`` saved and claimed in the test's ledger, as the pipeline claims one before publishing it."""
    return claimed_context(Ledger(f"sqlite:///{tmp_path / 'ledger.db'}"), draft, tmp_path / "o")


def draft_for(test: str, text: str = "October is PT Month. Thank you for trusting us!") -> Draft:
    # One item per test: a module's tests share the instance, and its Idempotency-Keys name the draft.
    return Draft(channel="mastodon", item_ids=(f"md:{test}",), parts=(text,))


def test_a_status_is_posted_with_its_visibility(tmp_path: Path, instance: MastodonInstance) -> None:
    before = statuses_count(instance)
    draft = draft_for("posted")

    receipt = live(tmp_path, instance, visibility="unlisted").publish(draft, claimed(tmp_path, draft))

    [status_id] = receipt.provider_ids
    status = requests.get(f"{instance.url}/api/v1/statuses/{status_id}", headers=instance.auth_headers(), timeout=5)
    assert status.json()["visibility"] == "unlisted"
    assert draft.parts[0] in status.json()["content"]
    assert receipt.location == status.json()["url"]
    assert status.json()["language"] == "en"
    assert statuses_count(instance) == before + 1
    assert not (tmp_path / "o" / "mastodon").exists()


def test_a_retry_after_a_timeout_sends_the_same_key_and_makes_one_status(
    tmp_path: Path, instance: MastodonInstance
) -> None:
    before = statuses_count(instance)
    mastodon = live(tmp_path, instance, timeout=1.5)
    draft = draft_for("timeout")
    context = claimed(tmp_path, draft)
    # The instance takes the status but answers too late: the client gives up, the status exists.
    next_post(instance, {"type": "latency", "delay_ms": 3000})

    with pytest.raises(PublishError, match="cannot be reached") as caught:
        mastodon.publish(draft, context)
    assert caught.value.transient
    receipt = mastodon.publish(draft, context)

    assert statuses_count(instance) == before + 1
    assert receipt.provider_ids


def test_instance_limits_are_read_once_and_enforced(tmp_path: Path, instance: MastodonInstance) -> None:
    limits = {"configuration": {"statuses": {"max_characters": 100, "characters_reserved_per_url": 30}}}
    instance.fault("/api/v2/instance", status=200, methods=("GET",), body=limits)
    mastodon = live(tmp_path, instance)
    before = statuses_count(instance)

    with pytest.raises(PublishError, match="101 of the instance's 100 characters") as caught:
        over = draft_for("limits", "a" * 101)
        mastodon.publish(over, claimed(tmp_path, over))
    within = draft_for("limits-url", "a" * 69 + " " + LONG_URL)
    receipt = mastodon.publish(within, claimed(tmp_path, within))

    assert not caught.value.transient
    assert (mastodon.instance_limits().max_characters, mastodon.instance_limits().url_weight) == (100, 30)
    assert receipt.provider_ids and statuses_count(instance) == before + 1


@pytest.mark.parametrize(
    ("status", "body", "transient"),
    [
        (503, None, True),
        (500, None, True),
        (422, {"error": "Validation failed: Text can't be blank"}, False),
        (403, {"error": "This action is not allowed"}, False),
    ],
)
def test_faults_are_transient_or_permanent(
    tmp_path: Path, instance: MastodonInstance, status: int, body: Any, transient: bool
) -> None:
    instance.fault("/api/v1/statuses", status=status, body=body)
    before = statuses_count(instance)

    with pytest.raises(PublishError, match=f"answered {status}") as caught:
        live(tmp_path, instance).publish(draft := draft_for(f"fault-{status}"), claimed(tmp_path, draft))

    assert caught.value.transient is transient and caught.value.retry_after is None
    if body is not None:
        assert body["error"] in caught.value.reason
    assert statuses_count(instance) == before


def test_a_rate_limit_is_transient_with_the_instances_wait(tmp_path: Path, instance: MastodonInstance) -> None:
    instance.fault("/api/v1/statuses", status=429)

    with pytest.raises(PublishError, match="answered 429") as caught:
        live(tmp_path, instance).publish(draft := draft_for("ratelimit"), claimed(tmp_path, draft))

    assert caught.value.transient and caught.value.retry_after == 300


def test_a_malformed_answer_is_transient(tmp_path: Path, instance: MastodonInstance) -> None:
    next_post(instance, {"type": "malformed"})

    with pytest.raises(PublishError, match="malformed") as caught:
        live(tmp_path, instance).publish(draft := draft_for("malformed"), claimed(tmp_path, draft))

    assert caught.value.transient


def test_a_wrong_token_waits_for_the_staff_to_fix_it_and_fails_verify(
    tmp_path: Path, instance: MastodonInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTODON_TOKEN", "not-the-token")
    mastodon = live(tmp_path, instance)

    with pytest.raises(CredentialError, match=r"channels\.mastodon\.credentials\.access_token.*answered 401.*fix it"):
        mastodon.publish(draft := draft_for("unauthorized"), claimed(tmp_path, draft))
    with pytest.raises(CredentialError, match=r"environment variable MASTODON_TOKEN.*401"):
        mastodon.verify()


def test_an_unset_token_is_raised_as_is_before_anything_is_sent(
    tmp_path: Path, instance: MastodonInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MASTODON_TOKEN")
    before = statuses_count(instance)
    # The pipeline decides what a missing credential means (nothing was sent), the same for every channel.
    with pytest.raises(CredentialError, match="environment variable MASTODON_TOKEN"):
        live(tmp_path, instance).publish(draft_for("unset"), outbox_context(tmp_path / "o", 1))
    assert statuses_count(instance) == before


def test_verify_signs_in_and_reads_the_limits(tmp_path: Path, instance: MastodonInstance) -> None:
    before = statuses_count(instance)
    said = live(tmp_path, instance).verify()
    assert said == f"Mastodon: signed in as @oakviewpt on {instance.url}; statuses up to 500 characters"
    assert statuses_count(instance) == before


def test_the_token_appears_in_no_log_error_ledger_or_outbox(
    tmp_path: Path, instance: MastodonInstance, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mastodon = live(tmp_path, instance)
    instance.fault("/api/v1/statuses", status=503)
    context = claimed(tmp_path, draft_for("secret"))
    with pytest.raises(PublishError) as caught:
        mastodon.publish(draft_for("secret"), context)
    receipt = mastodon.publish(draft_for("secret"), context)
    said = mastodon.verify()
    offline = MastodonChannel(
        "mastodon", mastodon.config.model_copy(update={"credentials": None}), mastodon.settings
    ).publish(draft_for("secret"), outbox_context(tmp_path / "o", 2))

    texts = [caplog.text, str(caught.value), repr(caught.value), str(receipt.to_json()), said, repr(mastodon.config)]
    assert not any(TOKEN in text for text in texts)
    stored = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    assert Path(offline.location).read_bytes() in stored
    assert not any(TOKEN.encode() in content for content in stored)


# -- a claim older than the instance keeps its Idempotency-Key ------------------------------------------------------


class Killed(BaseException):
    """The process dying where this is raised: nothing after it runs, no ``except Exception`` sees it."""


def die() -> None:
    raise Killed


def killed_before_the_post(mastodon: MastodonChannel, draft: Draft, context: PublishContext) -> None:
    """A run that claims the status, saves its key and dies just before posting it: the claim stays in flight."""
    mastodon.instance_limits()  # read first, so the run dies at the status's own request
    with pytest.raises(Killed):
        mastodon.publish(draft, replace(context, pace=die))


def newest_status(instance: MastodonInstance) -> dict[str, Any]:
    account = requests.get(
        f"{instance.url}/api/v1/accounts/verify_credentials", headers=instance.auth_headers(), timeout=5
    ).json()
    page = requests.get(
        f"{instance.url}/api/v1/accounts/{account['id']}/statuses",
        params={"limit": "1"},
        headers=instance.auth_headers(),
        timeout=5,
    )
    [status] = page.json()
    return dict(status)


# Each test below says its own text: the module's tests share the instance, and a lookup goes by the text.
def later(context: PublishContext) -> PublishContext:
    """``context`` two hours on: the next run resuming it, once the instance may have forgotten its key."""
    return replace(context, now=context.now + MastodonChannel.key_retention + timedelta(hours=1))


def test_a_claim_older_than_the_key_is_settled_by_the_status_it_made(
    tmp_path: Path, instance: MastodonInstance
) -> None:
    before = statuses_count(instance)
    draft = draft_for(
        "expired-made", "Our new hours start Monday: 7 a.m. to 7 p.m. https://www.oakviewpt.com/blog/expired-made"
    )
    context = claimed(tmp_path, draft)
    # The instance makes the status and holds its answer back; the client gives up, the status exists.
    hold = instance.hold_next_answer()
    with pytest.raises(PublishError, match="cannot be reached"):
        live(tmp_path, instance, timeout=1.5).publish(draft, context)
    assert hold.made.wait(30)
    hold.release()
    made = newest_status(instance)
    # As a run that died with it in flight leaves it: claimed, never recorded; and the instance forgot the key.
    context.ledger.claim_delivery(context.publication_id, part_address(1))
    instance.forget_idempotency_keys()

    receipt = live(tmp_path / "next", instance).publish(draft, later(context))

    assert statuses_count(instance) == before + 1
    assert receipt.provider_ids == (made["id"],) and receipt.location == made["url"]
    assert context.ledger.deliveries(context.publication_id)[part_address(1)].state == "sent"


def test_a_claim_older_than_the_key_without_a_status_is_posted_once(tmp_path: Path, instance: MastodonInstance) -> None:
    before = statuses_count(instance)
    draft = draft_for(
        "expired-not-made",
        "Free posture checks this Saturday at the Oakview clinic. https://www.oakviewpt.com/blog/expired-not-made",
    )
    context = claimed(tmp_path, draft)
    killed_before_the_post(live(tmp_path, instance), draft, context)
    assert statuses_count(instance) == before
    instance.forget_idempotency_keys()

    receipt = live(tmp_path / "next", instance).publish(draft, later(context))
    again = live(tmp_path / "again", instance).publish(draft, later(context))

    assert statuses_count(instance) == before + 1
    assert receipt.provider_ids == again.provider_ids == (newest_status(instance)["id"],)


def test_an_old_status_with_the_same_text_is_not_taken_for_the_claims(
    tmp_path: Path, instance: MastodonInstance
) -> None:
    draft = draft_for(
        "expired-old-twin",
        "Back pain after gardening? Three stretches that help. https://www.oakviewpt.com/blog/expired-old-twin",
    )
    # The same text posted a day before the claim (an earlier post of the same news, by hand).
    old = requests.post(
        f"{instance.url}/api/v1/statuses",
        json={"status": draft.text, "visibility": "public"},
        headers=instance.auth_headers(),
        timeout=5,
    ).json()
    instance.backdate(old["id"], timedelta(days=1))
    before = statuses_count(instance)
    context = claimed(tmp_path, draft)
    killed_before_the_post(live(tmp_path, instance), draft, context)
    instance.forget_idempotency_keys()

    receipt = live(tmp_path / "next", instance).publish(draft, later(context))

    assert statuses_count(instance) == before + 1
    assert receipt.provider_ids == (newest_status(instance)["id"],) != (old["id"],)
