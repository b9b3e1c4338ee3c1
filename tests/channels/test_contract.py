"""The contract every channel plugin keeps, checked for each installed channel (built-in or third party) with the
plugin kit a third party runs on theirs (:mod:`carecast.testing`): one contract, not two.

The built-in channels' provider rules (claim before send, a rerun sends nothing, outbox equals request, no secret
in outputs) are tested against each one's own fake provider in its module here; the kit's live rules are run on
the demo plugin (``tests/test_plugin.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from carecast.channel import channel_class, installed
from carecast.config import Settings
from carecast.practice import load_settings
from carecast.testing import ChannelContract
from tests.conftest import all_channels_config

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
