"""Every post channel through the faults of a real deployment, against its provider fake (tests/providers/).

- A run killed (SIGKILL, a real process) while its post request is at the provider, which acted on it and answers
  late: the next run resumes the claim, asks the provider, finds the post and sends only the rest. Zero duplicates
  at the provider, zero lost, nobody asked to ``resolve``.
- Storms: 30 % of the requests answered 500 or 429 without a provider code, or dropped before or after the provider
  acted (seeded): every item is posted exactly once within 5 runs.

Mastodon is killed the same way (the resumed post carries the same Idempotency-Key). The newsletter is killed
mid-send in tests/flows/test_resume.py (an SMTP server cannot be asked: the message in flight waits for
``resolve``); its dropped connections are in tests/channels/test_newsletter_faults.py.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from carecast.config import Settings
from carecast.ledger import Ledger
from carecast.model import ContentItem, now_utc
from carecast.pipeline import adapt, publish, sync_audience
from carecast.practice import load_settings
from tests.channels.sms_wire import CONSENTING
from tests.channels.sms_wire import CREDENTIALS as TWILIO
from tests.channels.test_bluesky import ACCOUNT as BLUESKY_ACCOUNT
from tests.channels.test_gbp import ACCOUNT as GBP_ACCOUNT
from tests.channels.test_gbp import ENV as GBP_ENV
from tests.channels.test_x_live import ENV as X_ENV
from tests.channels.test_x_live import SECRETS as X_SECRETS
from tests.conftest import all_channels_config
from tests.factories import make_item
from tests.providers import LocalHttpServer, RecordedRequest, Storm
from tests.providers.bluesky import BlueskyPds
from tests.providers.gbp import GbpServer
from tests.providers.graph import GraphApiServer
from tests.providers.images import ImageHost
from tests.providers.linkedin import LinkedInServer
from tests.providers.mastodon import PRACTICE_TOKEN, MastodonInstance, mastodon_instance
from tests.providers.twilio import TwilioServer
from tests.providers.xapi import XApiServer

GRAPH_TOKEN = "EAAG-faults-leak-canary-0001"
LINKEDIN_TOKEN = "AQV-faults-leak-canary-0002"
#: How long a provider holds back the answer to the request in flight when the run is killed.
LATE = 3.0
#: Seconds a claim stays untouched before the next run takes its sender for dead: short, for the test.
CLAIM_TIMEOUT = 1.0
ITEMS = 3
STORM_ITEMS = 8
#: When the runs happen: tomorrow 17:00 UTC, inside every sample SMS recipient's window (09:00-12:00 in US zones),
#: after any wait a fault asks for (measured from the real clock).
WHEN = now_utc().replace(hour=17, minute=0, second=0, microsecond=0) + timedelta(days=1)


@dataclass
class Provider:
    """One channel wired to its provider fake: what a post request is, and the texts of the posts it holds."""

    instance: str
    server: LocalHttpServer
    settings: Settings
    is_post: Callable[[RecordedRequest], bool]
    posted: Callable[[], list[str]]
    image: str | None = None
    #: Posts (or texts) the provider holds per item once it reached everyone.
    per_item: int = 1


def wire(name: str, stack: ExitStack) -> tuple[LocalHttpServer, dict[str, Any]]:
    """The fake for channel ``name``, started on ``stack``, and its channel section's changes."""
    credentials: dict[str, Any]
    if name in ("facebook", "instagram"):
        graph = stack.enter_context(GraphApiServer(access_token=GRAPH_TOKEN))
        credentials = {"access_token": {"env": "FAULTS_GRAPH"}}
        polls = {"poll_every": 0.05} if name == "instagram" else {}
        return graph, {"api_base": graph.url, "credentials": credentials, "timeout": 1, **polls}
    if name == "gbp":
        gbp = stack.enter_context(GbpServer(GBP_ACCOUNT))
        credentials = {
            "client_id": gbp.account.client_id,
            "client_secret": {"env": "GBP_CLIENT_SECRET"},
            "refresh_token": {"env": "GBP_REFRESH_TOKEN"},
            "token_uri": gbp.token_uri,
        }
        return gbp, {"api_base": gbp.url, "credentials": credentials, "timeout": 1, "retry_budget": 0}
    if name == "linkedin":
        api = stack.enter_context(LinkedInServer(access_token=LINKEDIN_TOKEN))
        credentials = {"access_token": {"env": "FAULTS_LINKEDIN"}}
        return api, {"api_base": api.url, "credentials": credentials, "timeout": 1}
    if name == "sms":
        twilio = stack.enter_context(TwilioServer(credentials=TWILIO))
        account: dict[str, Any] = {"account_sid": TWILIO.account_sid, "auth_token": {"env": "TWILIO_AUTH_TOKEN"}}
        sms = {"credentials": {**account, "api_base": twilio.url}, "status_callback": None}
        return twilio, {**sms, "timeout": 1, "retry_budget": 2}
    if name == "x":
        x = stack.enter_context(XApiServer(credentials=X_SECRETS))
        credentials = {key: {"env": variable} for key, variable in X_ENV.items()}
        return x, {"api_base": x.url, "credentials": credentials, "timeout": 1}
    pds = stack.enter_context(BlueskyPds(BLUESKY_ACCOUNT))
    credentials = {"handle": BLUESKY_ACCOUNT.handle, "app_password": {"env": "BLUESKY_APP_PASSWORD"}}
    return pds, {"pds_url": pds.url, "credentials": credentials, "timeout": 1, "retry_budget": 0}


def posted_texts(name: str, server: LocalHttpServer) -> list[str]:
    """The text of every post the provider holds, one per post (a duplicate shows twice)."""
    if isinstance(server, GraphApiServer) and name == "facebook":
        return [str(post.fields.get("message")) for post in server.posts]
    if isinstance(server, GraphApiServer):
        return [media.container.caption for media in server.published]
    if isinstance(server, GbpServer):
        return [str(post["summary"]) for post in server.posts]
    if isinstance(server, LinkedInServer):
        return [str(post.body["commentary"]) for post in server.posts]
    if isinstance(server, TwilioServer):
        return [f"{message['to']}: {message['body']}" for message in server.messages]
    if isinstance(server, XApiServer):
        return [tweet.text for tweet in server.tweets]
    assert isinstance(server, BlueskyPds)
    return [str(post["value"]["text"]) for post in server.posts]


POST_PATHS = {
    "facebook": "/feed",
    "instagram": "/media_publish",
    "gbp": "/localPosts",
    "linkedin": "/rest/posts",
    "bluesky": "com.atproto.repo.createRecord",
    "sms": "/Messages.json",
    "x": "/2/tweets",
}


@pytest.fixture(params=sorted(POST_PATHS))
def provider(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_host: ImageHost
) -> Iterator[Provider]:
    name = str(request.param)
    for variable, value in {
        **GBP_ENV,
        "FAULTS_GRAPH": GRAPH_TOKEN,
        "FAULTS_LINKEDIN": LINKEDIN_TOKEN,
        "BLUESKY_APP_PASSWORD": BLUESKY_ACCOUNT.app_password,
        "TWILIO_AUTH_TOKEN": TWILIO.auth_token,
        **{variable: getattr(X_SECRETS, key) for key, variable in X_ENV.items()},
    }.items():
        monkeypatch.setenv(variable, value)
    with ExitStack() as stack:
        server, changes = wire(name, stack)
        # 1 s: an answer held back LATE seconds is lost. A module whose faults are injected otherwise may wait longer.
        changes["timeout"] = getattr(request.module, "PROVIDER_TIMEOUT", changes["timeout"])
        settings = load_settings(
            all_channels_config(
                tmp_path,
                # Every item drafted and due at each run, sent at once: no schedule, per-run limit or pace in the way.
                {
                    "channels": {name: {**changes, "schedule": [], "max_items_per_run": STORM_ITEMS, "rate": "1000/s"}},
                    "ledger": {"claim_timeout": CLAIM_TIMEOUT},
                },
            )
        )
        path = POST_PATHS[name]
        yield Provider(
            name,
            server,
            settings,
            lambda seen: seen.method == "POST" and seen.path.endswith(path),
            lambda: posted_texts(name, server),
            f"{image_host.url}/photo.jpg" if name == "instagram" else None,
            len(CONSENTING) if name == "sms" else 1,
        )


def items(provider: Provider, count: int = ITEMS) -> list[ContentItem]:
    return [
        make_item(
            f"rss:blog:tip-{number}",
            summary=f"Tip {number}: stand up and stretch your hamstrings for a minute every hour.",
            title=f"Desk tip number {number}",
            url=f"https://www.oakviewpt.com/blog/tip-{number}",
            # Texts and Instagram are for stories (the sample's ``sources``), the others for the blog; texts take no
            # blog post, only recognition and observances.
            source="stories" if provider.instance in ("instagram", "sms") else "blog",
            kind="recognition" if provider.instance == "sms" else "post",
            **({"image_url": provider.image, "image_alt": "A desk"} if provider.image else {}),
        )
        for number in range(1, count + 1)
    ]


def _publish_in_child(settings: Settings, url: str, instance: str) -> None:
    publish(settings, Ledger(url), instance, now=WHEN)


def prepared(provider: Provider, url: str, count: int = ITEMS) -> Ledger:
    """A ledger holding ``count`` items (and the SMS audience), for runs of ``provider``'s channel."""
    ledger = Ledger(url)
    ledger.upsert_items(items(provider, count))
    sync_audience(provider.settings, ledger)
    return ledger


def test_a_run_killed_mid_request_is_resumed_with_no_duplicate_and_nothing_lost(
    provider: Provider, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = prepared(provider, url)
    adapt(provider.settings, ledger, provider.instance, now=WHEN)
    provider.server.answer_late(provider.is_post, LATE)

    # A real process, killed while the provider holds the answer to its first post (which it has made).
    child = multiprocessing.get_context("fork").Process(
        target=_publish_in_child, args=(provider.settings, url, provider.instance)
    )
    child.start()
    deadline = time.monotonic() + 60
    while provider.server.late is None:
        assert child.is_alive() and time.monotonic() < deadline, "the run ended before its post was in flight"
        time.sleep(0.02)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert len(provider.posted()) == 1
    time.sleep(CLAIM_TIMEOUT + 0.2)  # its claim goes stale

    outcomes = publish(provider.settings, ledger, provider.instance, now=WHEN)

    assert [outcome.state for outcome in outcomes] == ["published"] * ITEMS, [o.detail for o in outcomes]
    counted = Counter(provider.posted())
    assert len(counted) == ITEMS * provider.per_item and set(counted.values()) == {1}, counted
    assert ledger.unknown_deliveries() == {}
    assert len([r for r in provider.server.requests if provider.is_post(r)]) == ITEMS * provider.per_item
    ledger.close()


def test_a_storm_of_500s_429s_and_dropped_connections_reaches_everyone_once_within_5_runs(
    provider: Provider, tmp_path: Path
) -> None:
    ledger = prepared(provider, f"sqlite:///{tmp_path / 'ledger.db'}", STORM_ITEMS)
    storm = Storm(0.3, lambda seen: True)  # seeded: a failure repeats
    provider.server.storm(storm)
    runs = []
    for run in range(5):
        # Each run a day later: waits asked for (a 429 until midnight, Meta's hour) are over.
        moment = WHEN + timedelta(days=run)
        runs.append([o.state for o in adapt(provider.settings, ledger, provider.instance, now=moment)])
        runs[-1] += [o.state for o in publish(provider.settings, ledger, provider.instance, now=moment)]
        done = len(provider.posted()) == STORM_ITEMS * provider.per_item
        if done and not ledger.due(provider.instance, moment + timedelta(days=1)):
            break
    provider.server.storm(None)
    print(f"{provider.instance}: {len(runs)} run(s), faults injected {storm.injected}")  # shown with -s

    counted = Counter(provider.posted())
    assert len(counted) == STORM_ITEMS * provider.per_item, (counted, runs, storm.injected)
    assert set(counted.values()) == {1}, (counted, runs, storm.injected)
    assert sum(storm.injected.values()) >= 3, storm.injected
    assert ledger.unknown_deliveries() == {}
    ledger.close()


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_outbox_is_retried_once_fixed_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    settings = load_settings(all_channels_config(tmp_path, {"channels": {"facebook": {"schedule": []}}}))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.upsert_items([make_item()])

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise OSError(error, os.strerror(error))

    # At the operating system's boundary: the disk fills once the partial file exists (ENOSPC at the rename), or the
    # folder is read-only (EROFS at creating the partial file; root writes through a chmod, so it is patched too).
    adapt(settings, ledger, "facebook")
    with monkeypatch.context() as patched:
        patched.setattr(os, "replace" if error == errno.ENOSPC else "open", refused)
        [failed] = publish(settings, ledger, "facebook")
    [published] = publish(settings, ledger, "facebook")  # space freed, or the folder writable again

    outbox = settings.path(settings.outbox)
    assert failed.state == "retry" and "free space or make it writable" in failed.detail, failed.detail
    assert published.state == "published"
    assert not list(outbox.rglob(".partial-*"))
    assert [path.name for path in (outbox / "facebook").iterdir()] == [Path(published.detail).name]
    ledger.close()


def mastodon_settings(tmp_path: Path, instance: MastodonInstance, timeout: float = 1, **ledger: Any) -> Settings:
    """The sample config posting to ``instance`` (token in FAULTS_MASTODON), every item due at once."""
    credentials = {"access_token": {"env": "FAULTS_MASTODON"}}
    section = {"instance_url": instance.url, "credentials": credentials, "timeout": timeout, "rate": "1000/s"}
    changes = {**section, "schedule": [], "max_items_per_run": STORM_ITEMS}
    return load_settings(all_channels_config(tmp_path, {"channels": {"mastodon": changes}, "ledger": ledger}))


def mastodon_statuses(instance: MastodonInstance) -> list[dict[str, Any]]:
    """Every status of the practice's account on ``instance`` (a duplicate shows twice)."""
    headers = instance.auth_headers()
    me = requests.get(f"{instance.url}/api/v1/accounts/verify_credentials", headers=headers, timeout=5).json()
    found = requests.get(
        f"{instance.url}/api/v1/accounts/{me['id']}/statuses", params={"limit": 40}, headers=headers, timeout=5
    )
    return list(found.json())


def fault_taken(instance: MastodonInstance) -> bool:
    """Whether every fault rule armed on ``instance`` met its request (mastodon-mock drops a rule once used up)."""
    return not requests.get(f"{instance.url}/api/v1/_mock/faults", timeout=5).json()


@pytest.mark.parametrize("point", ["before its post was sent", "after the instance made the status"])
def test_mastodon_killed_mid_post_is_resumed_with_no_duplicate_and_nothing_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    """SIGKILL while the instance holds back an answer: to the limits read before the first post (mastodon-mock's
    latency rule), or to the first post once its status is made. The resumed claim posts again with the same
    Idempotency-Key, so the instance gives back the status it made instead of a second one."""
    monkeypatch.setenv("FAULTS_MASTODON", PRACTICE_TOKEN)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with mastodon_instance() as instance:
        # Answers are lost to the kill alone, not to a client that gives up on a slow instance (a loaded machine).
        settings = mastodon_settings(tmp_path, instance, timeout=30, claim_timeout=CLAIM_TIMEOUT)
        ledger = Ledger(url)
        ledger.upsert_items(items(Provider("mastodon", LocalHttpServer(), settings, bool, list)))
        adapt(settings, ledger, "mastodon", now=WHEN)
        hold = None
        if point.startswith("after"):
            hold = instance.hold_next_answer()
            in_flight = hold.made.is_set
        else:
            effect = {"type": "latency", "delay_ms": int(LATE * 1000)}
            rule = {"match": {"methods": ["GET"], "path": "/api/v2/instance"}, "effect": effect, "count": 1}
            requests.post(f"{instance.url}/api/v1/_mock/faults", json=rule, timeout=5).raise_for_status()
            in_flight = partial(fault_taken, instance)
        child = multiprocessing.get_context("fork").Process(target=_publish_in_child, args=(settings, url, "mastodon"))
        child.start()
        deadline = time.monotonic() + 60
        while not in_flight():
            assert child.is_alive() and time.monotonic() < deadline, "the run ended before its request was in flight"
            time.sleep(0.02)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        if hold is not None:
            hold.release()
        assert len(mastodon_statuses(instance)) == (0 if hold is None else 1)
        time.sleep(CLAIM_TIMEOUT + 0.2)  # its claim goes stale

        outcomes = publish(settings, ledger, "mastodon", now=WHEN)
        posted = mastodon_statuses(instance)
        assert ledger.unknown_deliveries() == {}
        ledger.close()

    assert [outcome.state for outcome in outcomes] == ["published"] * ITEMS, [o.detail for o in outcomes]
    counted = Counter(status["content"] for status in posted)
    assert len(counted) == ITEMS and set(counted.values()) == {1}, counted


def test_a_mastodon_storm_reaches_everyone_once_within_5_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mastodon-mock's own fault rules (a 500, a 429, an answer later than the client waits: the status is made,
    the answer lost) before 30 % of the posts, drawn from a seeded generator; the retry's Idempotency-Key gets the
    status made back instead of a second one."""
    monkeypatch.setenv("FAULTS_MASTODON", PRACTICE_TOKEN)
    draw = random.Random(17)
    with mastodon_instance() as instance:
        settings = mastodon_settings(tmp_path, instance)
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        ledger.upsert_items(items(Provider("mastodon", LocalHttpServer(), settings, bool, list), STORM_ITEMS))
        injected: Counter[str] = Counter()

        def statuses() -> list[dict[str, Any]]:
            return mastodon_statuses(instance)

        for run in range(5):
            # Faults before 30 % of this run's posts (the rules wait for the next matching requests).
            for _ in range(STORM_ITEMS - len(statuses())):
                if draw.random() < 0.3:
                    kind = draw.choice(["status", "ratelimit", "latency"])
                    effect = {"type": kind, "status": 500 if kind == "status" else 429, "delay_ms": 1500}
                    rule = {"match": {"methods": ["POST"], "path": "/api/v1/statuses"}, "effect": effect, "count": 1}
                    requests.post(f"{instance.url}/api/v1/_mock/faults", json=rule, timeout=5).raise_for_status()
                    injected[kind] += 1
            moment = WHEN + timedelta(days=run)
            adapt(settings, ledger, "mastodon", now=moment)
            publish(settings, ledger, "mastodon", now=moment)
        posted = statuses()
        ledger.close()

    counted = Counter(status["content"] for status in posted)
    assert len(counted) == STORM_ITEMS and set(counted.values()) == {1}, (counted, injected)
    assert sum(injected.values()) >= 3, injected
