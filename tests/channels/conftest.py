"""Helpers shared by the channel tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from carecast.audience import load_audience
from carecast.config import Settings, load_settings
from carecast.ledger import Ledger
from carecast.model import Draft
from carecast.pipeline import Outcome, adapt, make_channel, publish
from channels.base import Channel, Outbox, PublishContext
from tests.conftest import SAMPLE_CONFIG, all_channels_config
from tests.providers import LocalHttpServer, RecordedRequest, Reply


def outbox_context(root: Path, publication_id: int = 1) -> PublishContext:
    """Publish to an outbox under ``root`` as publication ``publication_id`` (file ``<id:06d>.<suffix>``)."""
    return PublishContext(publication_id, Outbox(root), Ledger(f"sqlite:///{root.parent / 'ledger.db'}"))


def sample_addresses(channel_type: str) -> frozenset[str]:
    """Every address of the sample audience of ``channel_type``, whether it may receive or not."""
    return frozenset(s.address for s in load_audience(SAMPLE_CONFIG / "audience", channel_type))


def naming_any(texts: Iterable[str | None], addresses: Iterable[str]) -> list[str]:
    """The ``texts`` that name one of ``addresses`` (a phone number or an email address: PII in errors and logs)."""
    wanted = [address.lower() for address in addresses]
    return [text for text in texts if text and any(address in text.lower() for address in wanted)]


def our_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What CareCast's own loggers (carecast.*, channels.*) logged while the test ran (for a fixture's teardown to
    check); the fake providers' loggers are theirs."""
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    return [r.getMessage() for r in records if r.name.split(".")[0] in {"carecast", "channels"}]


#: The start of a JPEG file: what the Graph API fake checks an Instagram image by.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64


class ImageHost(LocalHttpServer):
    """The practice's website as far as images go: ``/photo.jpg`` is a JPEG, ``/photo.png`` a PNG, else 404."""

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path == "/photo.jpg":
            return Reply(200, JPEG, {"Content-Type": "image/jpeg"})
        if request.path == "/photo.png":
            return Reply(200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, {"Content-Type": "image/png"})
        return Reply(404, "not found")


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    with ImageHost() as host:
        yield host


def run_channel(settings: Settings, ledger: Ledger, instance: str, now: datetime | None = None) -> list[Outcome]:
    """One run of ``instance`` as the pipeline runs it: drafts for new items, then every due draft published."""
    adapt(settings, ledger, instance, now=now)
    return publish(settings, ledger, instance, now=now)


def claimed_context(root: Path, draft: Draft) -> PublishContext:
    """``draft`` saved and claimed in a ledger under ``root``, as the pipeline claims one before publishing it."""
    ledger = Ledger(f"sqlite:///{root / 'ledger.db'}")
    draft_id = ledger.save_draft(draft, "default", "approved")
    return PublishContext(ledger.claim(draft_id), Outbox(root / "outbox"), ledger)


ChannelT = TypeVar("ChannelT", bound=Channel)


def sample_channel(project: Path, cls: type[ChannelT], **changes: Any) -> ChannelT:
    """The sample config's channel of class ``cls`` (commented-out blocks uncommented), its section changed by
    ``changes``, with the config copied under ``project``."""
    settings = load_settings(all_channels_config(project, {"channels": {cls.name: changes}}))
    made = make_channel(settings, cls.name)
    assert isinstance(made, cls)
    return made


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """An empty ledger on SQLite under the test's folder."""
    opened = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield opened
    opened.close()
