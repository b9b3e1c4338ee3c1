"""The contract every channel plugin keeps, checked for each installed channel (built-in or third party) with the
plugin kit a third party runs on theirs (:mod:`carecast.testing`): one contract, not two.

The provider rules (outbox equals request, claim before send, a rerun sends nothing, no secret in outputs) run where
a channel is given its fake provider: Facebook here, the demo plugin in ``tests/test_plugin.py``; each built-in's
own module tests those guarantees against its fake in depth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from carecast.channel import channel_class, installed
from carecast.config import Settings
from carecast.practice import load_settings
from carecast.testing import SECRET_ENV, ChannelContract, LocalHttpServer, sends
from tests.conftest import SAMPLE_CONFIG, all_channels_config
from tests.providers.graph import GraphApiServer

#: The package the built-in channels are installed as (wherever the entry points say it is).
BUILT_IN = channel_class("x").__module__.rpartition(".")[0]


class TestEveryInstalledChannel(ChannelContract):
    @pytest.fixture(params=installed())
    def kind(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def settings(self, kind: str, tmp_path: Path) -> Settings:
        # The channels the sample config holds commented out are examples too, uncommented as staff would.
        settings = load_settings(all_channels_config(tmp_path / "contract"))
        assert any(config.type == kind for config in settings.channels.values()), (
            f"the sample config has no channel of type {kind!r} (not even commented out): every channel needs one"
        )
        return settings

    def test_a_built_in_lives_in_its_own_module(self, kind: str) -> None:
        module = channel_class(kind).__module__
        assert module == f"{BUILT_IN}.{kind}" or not module.startswith(f"{BUILT_IN}.")


class TestFacebookAgainstItsFake(ChannelContract):
    """The whole kit, provider rules included, on a built-in channel and its fake Graph API."""

    channel_type = "facebook"
    section: ClassVar[dict[str, Any]] = {"page_id": "104857600000001", "max_age_days": 3650}
    more_config: ClassVar[dict[str, Any]] = {"templates": str(SAMPLE_CONFIG / "templates")}

    def provider(self, secret: str) -> GraphApiServer:
        return GraphApiServer(access_token=secret)

    def live_section(self, provider_url: str) -> dict[str, Any]:
        return {**self.section, "api_base": provider_url, "credentials": {"access_token": {"env": SECRET_ENV}}}

    def sent(self, provider: LocalHttpServer) -> list[Any]:
        return [request.body for request in sends(provider)]  # the form fields Facebook read

    def in_outbox(self, written: Path) -> list[Any]:
        return [json.loads(written.read_text(encoding="utf-8"))["request"]]
