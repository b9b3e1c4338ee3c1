"""The contract every channel plugin keeps, checked for each installed channel (built-in or third party)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from carecast.channel import Channel, channel_class, installed, make_channel
from carecast.config import Settings
from carecast.errors import RenderError
from carecast.model import content_hash
from carecast.practice import load_settings
from tests.channels.conftest import outbox_context
from tests.conftest import all_channels_config
from tests.factories import make_item

ITEM = make_item(
    "rss:blog:contract",
    summary_html="<p>Sitting all day? These <strong>five stretches</strong> take ten minutes.</p>",
    published=datetime(2026, 11, 2, 15, 0, tzinfo=UTC),
    content_hash=content_hash("contract"),
    # Every channel takes an item with an image; Instagram takes no other.
    image_url="https://www.oakviewpt.com/images/blog/desk-setup.jpg",
    image_alt="A laptop raised on a stand next to an external keyboard on a tidy desk",
)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The channels the sample config holds commented out are examples too, uncommented as staff would.
    return load_settings(all_channels_config(tmp_path_factory.mktemp("contract")))


def instance_of(settings: Settings, kind: str) -> Channel:
    names = [name for name, config in settings.channels.items() if config.type == kind]
    assert names, f"the sample config has no channel of type {kind!r} (not even commented out): every channel needs one"
    return make_channel(settings, names[0])


@pytest.fixture(params=installed())
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_one_name_for_entry_point_class_and_config_type(kind: str) -> None:
    cls = channel_class(kind)
    assert cls.name == kind
    assert cls.__module__ == f"channels.{kind}" or not cls.__module__.startswith("channels.")
    assert set(cls.limits) <= cls.known_limits


def test_config_forbids_unknown_keys(settings: Settings, kind: str) -> None:
    section = instance_of(settings, kind).config.model_dump(mode="json", exclude_unset=True)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        channel_class(kind).Config.model_validate({**section, "no_such_key": 1})


def test_render_is_pure_and_within_limits(settings: Settings, kind: str) -> None:
    channel = instance_of(settings, kind)
    first, second = channel.render([ITEM]), channel.render([ITEM])
    assert first == second
    assert first.item_ids == (ITEM.id,) and first.parts and all(part.strip() for part in first.parts)
    assert channel.enforce(first) == first


def test_a_patient_without_authorization_is_refused_everywhere(settings: Settings, kind: str) -> None:
    patient = replace(ITEM, id="md:stories:patient", mentions_patient=True)
    with pytest.raises(RenderError, match="HIPAA"):
        instance_of(settings, kind).render([patient])


def test_publishing_without_credentials_writes_the_outbox(settings: Settings, kind: str, tmp_path: Path) -> None:
    channel = instance_of(settings, kind)
    assert "outbox" in channel.verify()
    receipt = channel.publish(channel.render([ITEM]), outbox_context(tmp_path / "outbox", 7))
    written = Path(receipt.location)
    assert written.parent == tmp_path / "outbox" / channel.instance and written.stem == "000007"
    assert written.stat().st_size > 0
