"""The sample practice with every channel enabled (the commented-out blocks uncommented): without credentials a run
writes one outbox file per channel and published item, each the exact request, and nothing the second time; with
them ``check --live`` proves each account, posting nothing, and warns a week before a token expires."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from carecast.channel import make_channel
from carecast.cli import main
from carecast.ledger import Ledger
from carecast.model import now_utc
from carecast.practice import load_settings
from carecast_channels.facebook import FacebookChannel
from carecast_channels.instagram import InstagramChannel
from carecast_channels.linkedin import LinkedInChannel, little_text
from tests.conftest import all_channels_config, commented_channels
from tests.providers.graph import GraphApiServer
from tests.providers.linkedin import LinkedInServer
from tests.test_pipeline import outbox_files, run


def test_every_channel_writes_one_outbox_file_per_item_and_a_rerun_none(tmp_path: Path) -> None:
    settings = load_settings(all_channels_config(tmp_path))
    assert set(commented_channels()["channels"]) <= set(settings.channels)
    ledger = Ledger(settings.ledger_url())
    try:
        _, outcomes = run(settings, ledger)
        _, again = run(settings, ledger)
    finally:
        ledger.close()

    files = outbox_files(settings)
    for instance in settings.channels:
        published = [o for o in outcomes if o.channel == instance and o.state == "published"]
        written = [path for path in files if path.parent.name == instance]
        assert published and len(written) == len(published), instance
        assert sorted(Path(o.detail.split(";")[0]).resolve() for o in published) == sorted(p.resolve() for p in written)
    assert [o for o in again if o.state == "published"] == [] and outbox_files(settings) == files

    for outcome in (o for o in outcomes if o.state == "published" and o.channel in commented_channels()["channels"]):
        channel, draft = make_channel(settings, outcome.channel), outcome.draft
        assert draft is not None
        written = json.loads(Path(outcome.detail).read_text(encoding="utf-8"))
        if isinstance(channel, FacebookChannel):
            path, body = channel.request(draft)
            assert (written["url"], written["request"]) == (channel.url(path), body)
        elif isinstance(channel, InstagramChannel):
            assert written["requests"][0]["request"] == channel.container_request(draft)
            assert "http" not in written["requests"][0]["request"]["caption"]
        elif isinstance(channel, LinkedInChannel):
            assert written["request"]["commentary"] == little_text(draft.text)
            assert written["request"]["author"] == "urn:li:organization:10000001"


def test_check_live_proves_each_account_and_warns_a_week_before_a_token_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    soon = now_utc() + timedelta(days=4, hours=1)
    with GraphApiServer(expires_at=int(soon.timestamp())) as graph, LinkedInServer() as linkedin:
        meta = {"api_base": graph.url, "credentials": {"access_token": {"env": "META_TOKEN"}}}
        channels = {
            "facebook": meta,
            "instagram": meta,
            "linkedin": {
                "api_base": linkedin.url,
                "credentials": {"access_token": {"env": "LINKEDIN_TOKEN"}},
                "token_expires_at": "2099-01-27",
            },
        }
        monkeypatch.setenv("META_TOKEN", graph.access_token)
        monkeypatch.setenv("LINKEDIN_TOKEN", linkedin.access_token)
        config = all_channels_config(tmp_path, {"channels": channels})

        assert main(["check", "--live", "--config", str(config)]) == 0

    lines = {line.split(":", 1)[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "WARNING: the token expires on" in lines["facebook"] and "(in 4 days)" in lines["instagram"]
    assert lines["linkedin"].endswith("ADMINISTRATOR); the token expires on 2099-01-27 00:00 UTC")
    assert "outbox" in lines["x"]
    assert graph.posts == [] and graph.containers == {} and linkedin.posts == []
