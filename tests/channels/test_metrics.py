"""Each channel's own numbers, read from its provider's fake in the provider's shape (``Channel.engagement``,
``carecast.metrics.read_metrics``), kept in the ledger and shown by the report; a metric the provider refuses (a
missing permission, a retired metric) is a line of the report, never a failed run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from carecast import report
from carecast.channel import Channel
from carecast.ledger import Ledger
from carecast.metrics import read_metrics
from carecast.model import now_utc
from carecast_channels.bluesky import BlueskyChannel
from carecast_channels.facebook import FacebookChannel
from carecast_channels.gbp import GbpChannel
from carecast_channels.instagram import InstagramChannel
from carecast_channels.linkedin import LinkedInChannel
from carecast_channels.mastodon import MastodonChannel
from carecast_channels.x import XChannel
from tests.channels.conftest import publish_run, sample_channel
from tests.factories import make_item
from tests.providers.bluesky import BlueskyAccount, BlueskyPds
from tests.providers.gbp import DAILY_VALUES, GbpServer
from tests.providers.graph import GraphApiServer
from tests.providers.images import ImageHost
from tests.providers.linkedin import LINKEDIN_TOKEN, SHARE_STATISTICS, LinkedInServer
from tests.providers.mastodon import PRACTICE_TOKEN, mastodon_instance
from tests.providers.xapi import PUBLIC_METRICS, XApiServer, XCredentials

TOKEN = "EAAG-metrics-token-0001"
X_SECRETS = XCredentials(
    consumer_key="ck-metrics", consumer_secret="cs-metrics", access_token="1-at-metrics", access_token_secret="ats-m"
)
X_ENV = {
    name: f"X_{name.upper()}" for name in ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
}


def numbers(channel: Channel, ledger: Ledger) -> tuple[report.Row, list[str]]:
    """Read the channel's numbers as the metrics job does; its one report row, and the job's lines."""
    lines = read_metrics(channel.settings, ledger, {channel.instance: channel})
    built = report.build(channel.settings, ledger, now_utc() - timedelta(days=1), now_utc() + timedelta(minutes=1))
    [row] = built.rows
    assert any(f"{channel.instance}: " in line for line in lines), lines
    return row, lines


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphApiServer]:
    monkeypatch.setenv("META_TOKEN", TOKEN)
    with GraphApiServer(access_token=TOKEN) as server:
        yield server


def test_facebook_insights_and_a_retired_metric(tmp_path: Path, graph: GraphApiServer, ledger: Ledger) -> None:
    facebook = sample_channel(
        tmp_path, FacebookChannel, api_base=graph.url, credentials={"access_token": {"env": "META_TOKEN"}}
    )
    ledger.upsert_items([make_item()])
    [sent] = publish_run(facebook.settings, ledger, "facebook")
    assert sent.state == "published", sent.detail
    row, _ = numbers(facebook, ledger)
    assert row.engagement == {
        "post_impressions_unique": 412,
        "post_clicks": 23,
        "post_reactions_by_type_total.like": 17,
        "post_reactions_by_type_total.love": 4,
    }
    graph.retired_metrics.add("post_impressions_unique")
    row, lines = numbers(facebook, ledger)
    assert "post_impressions_unique" not in row.engagement and row.engagement["post_clicks"] == 23
    [problem] = row.problems
    assert problem.startswith("post_impressions_unique: retired or not available")
    assert any("retired" in line for line in lines)
    assert "post_impressions_unique: retired" in report.render_table(
        report.build(facebook.settings, ledger, now_utc() - timedelta(days=1), now_utc() + timedelta(minutes=1))
    )


def test_instagram_insights_and_a_missing_permission(
    tmp_path: Path, graph: GraphApiServer, ledger: Ledger, image_host: ImageHost
) -> None:
    instagram = sample_channel(
        tmp_path,
        InstagramChannel,
        api_base=graph.url,
        credentials={"access_token": {"env": "META_TOKEN"}},
        poll_every=0.05,
    )
    ledger.upsert_items([make_item(source="stories", image_url=f"{image_host.url}/photo.jpg", image_alt="A desk")])
    [sent] = publish_run(instagram.settings, ledger, "instagram")
    assert sent.state == "published", sent.detail
    graph.withheld_metrics.add("saved")
    row, lines = numbers(instagram, ledger)
    assert row.engagement == {"reach": 268, "likes": 31, "comments": 5, "shares": 2, "views": 540}
    assert row.problems == [row.problems[0]] and row.problems[0].startswith("saved: permission missing")
    assert any("permission missing" in line for line in lines)


def test_x_public_metrics_and_an_access_level_without_reads(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    with XApiServer(credentials=X_SECRETS) as server:
        for name, variable in X_ENV.items():
            monkeypatch.setenv(variable, getattr(X_SECRETS, name))
        credentials = {name: {"env": variable} for name, variable in X_ENV.items()}
        x = sample_channel(tmp_path, XChannel, api_base=server.url, credentials=credentials)
        ledger.upsert_items([make_item()])
        [sent] = publish_run(x.settings, ledger, "x")
        assert sent.state == "published", sent.detail
        row, _ = numbers(x, ledger)
        assert row.engagement == PUBLIC_METRICS
        assert server.requests_to("GET", "/2/tweets")[-1].query["tweet.fields"] == "public_metrics"
        server.reads_forbidden = True
        row, lines = numbers(x, ledger)
        assert row.engagement == {} and row.problems[0].startswith("public_metrics: permission missing")
        assert any("permission missing" in line for line in lines)


def test_mastodon_status_counts_and_a_deleted_status(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTODON_TOKEN", PRACTICE_TOKEN)
    with mastodon_instance() as instance:
        mastodon = sample_channel(
            tmp_path,
            MastodonChannel,
            instance_url=instance.url,
            credentials={"access_token": {"env": "MASTODON_TOKEN"}},
        )
        ledger.upsert_items([make_item()])
        [sent] = publish_run(mastodon.settings, ledger, "mastodon")
        assert sent.state == "published", sent.detail
        [status_id] = ledger.publications()[0].provider_ids
        requests.post(
            f"{instance.url}/api/v1/statuses/{status_id}/favourite", headers=instance.auth_headers(), timeout=5
        )
        row, _ = numbers(mastodon, ledger)
        assert row.engagement == {"replies_count": 0, "reblogs_count": 0, "favourites_count": 1}
        requests.delete(f"{instance.url}/api/v1/statuses/{status_id}", headers=instance.auth_headers(), timeout=5)
        row, _ = numbers(mastodon, ledger)
        assert row.problems == ["status: deleted, or no longer visible to the account"]


def test_bluesky_post_counts_from_get_posts(tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    account = BlueskyAccount(app_password="bsky-metrics-password")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", account.app_password)
    with BlueskyPds(account) as pds:
        bluesky = sample_channel(
            tmp_path,
            BlueskyChannel,
            pds_url=pds.url,
            credentials={"handle": account.handle, "app_password": {"env": "BLUESKY_APP_PASSWORD"}},
        )
        ledger.upsert_items([make_item()])
        [sent] = publish_run(bluesky.settings, ledger, "bluesky")
        assert sent.state == "published", sent.detail
        [uri] = ledger.publications()[0].provider_ids
        pds.counts[uri] = {"likeCount": 12, "repostCount": 3, "replyCount": 1, "quoteCount": 0}
        row, _ = numbers(bluesky, ledger)
        assert row.engagement == {"like_count": 12, "repost_count": 3, "reply_count": 1, "quote_count": 0}
        assert [value for name, value in pds.requests_to("GET", "/xrpc/app.bsky.feed.getPosts")[-1].query_pairs] == [
            uri
        ]
        pds.repo.records.clear()  # the post was deleted
        row, _ = numbers(bluesky, ledger)
        assert row.problems == ["post: deleted or not found"]


def test_linkedin_share_statistics_and_a_missing_permission(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINKEDIN_ACCESS_TOKEN", LINKEDIN_TOKEN)
    with LinkedInServer() as api:
        linkedin = sample_channel(
            tmp_path, LinkedInChannel, api_base=api.url, credentials={"access_token": {"env": "LINKEDIN_ACCESS_TOKEN"}}
        )
        ledger.upsert_items([make_item()])
        [sent] = publish_run(linkedin.settings, ledger, "linkedin")
        assert sent.state == "published", sent.detail
        row, _ = numbers(linkedin, ledger)
        assert row.engagement == {key: value for key, value in SHARE_STATISTICS.items() if isinstance(value, int)}
        api.statistics_allowed = False
        row, lines = numbers(linkedin, ledger)
        assert row.problems[0].startswith("share_statistics: permission missing: the token needs r_organization_social")
        assert any("r_organization_social" in line for line in lines)


def test_gbp_daily_metrics_per_location_and_a_disabled_api(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GbpServer() as server:
        monkeypatch.setenv("GBP_CLIENT_SECRET", server.account.client_secret)
        monkeypatch.setenv("GBP_REFRESH_TOKEN", server.account.refresh_token)
        credentials = {
            "client_id": server.account.client_id,
            "client_secret": {"env": "GBP_CLIENT_SECRET"},
            "refresh_token": {"env": "GBP_REFRESH_TOKEN"},
            "token_uri": server.token_uri,
        }
        gbp = sample_channel(
            tmp_path, GbpChannel, api_base=server.url, performance_base=server.url, credentials=credentials
        )
        ledger.upsert_items([make_item()])
        [sent] = publish_run(gbp.settings, ledger, "gbp")
        assert sent.state == "published", sent.detail
        row, _ = numbers(gbp, ledger)
        assert row.engagement == {metric.lower(): value * 3 for metric, value in DAILY_VALUES.items()}
        [reading] = ledger.metrics()
        assert reading.subject == f"accounts/{server.account.account_id}/locations/{server.account.location_id}"
        server.performance_allowed = False
        row, _ = numbers(gbp, ledger)
        assert row.problems[0].startswith("daily_metrics: permission missing, or the Performance API is not enabled")
