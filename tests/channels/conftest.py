"""Helpers shared by the channel tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from carecast.audience import load_audience
from carecast.channel import Channel, Outbox, PublishContext, make_channel
from carecast.config import Settings
from carecast.errors import PublishError
from carecast.ledger import Ledger
from carecast.model import Draft
from carecast.pipeline import Outcome, adapt, ingest, publish
from carecast.practice import load_settings
from tests.conftest import SAMPLE_CONFIG, all_channels_config
from tests.providers.images import ImageHost


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
    """What CareCast's own loggers (carecast.*, carecast_channels.*) logged while the test ran (for a fixture's teardown
    to check); the fake providers' loggers are theirs."""
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    return [r.getMessage() for r in records if r.name.split(".")[0] in {"carecast", "carecast_channels"}]


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    with ImageHost() as host:
        yield host


def publish_run(settings: Settings, ledger: Ledger, instance: str, now: datetime | None = None) -> list[Outcome]:
    """One run of ``instance`` as the pipeline runs it: drafts for new items, then every due draft published."""
    adapt(settings, ledger, instance, now=now)
    return publish(settings, ledger, instance, now=now)


def claimed_context(ledger: Ledger, draft: Draft, outbox: Path) -> PublishContext:
    """``draft`` saved and claimed in ``ledger``, as the pipeline claims one before publishing it."""
    draft_id = ledger.save_draft(draft, "default", "approved")
    return PublishContext(ledger.claim(draft_id), Outbox(outbox), ledger)


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
    """A ledger on SQLite that several runs of a test share."""
    opened = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield opened
    opened.close()


class Publications:
    """Drafts claimed in a real ledger, as the pipeline claims them, and re-claimed after a transient failure."""

    def __init__(self, root: Path) -> None:
        self.ledger = Ledger(f"sqlite:///{root / 'ledger.db'}")
        self.outbox = Outbox(root / "outbox")
        self.root = root

    def claim(self, draft: Draft) -> PublishContext:
        draft_id = self.ledger.save_draft(draft, "@OakviewPT", "approved")
        return PublishContext(self.ledger.claim(draft_id), self.outbox, self.ledger)

    def fail(self, context: PublishContext, error: PublishError) -> None:
        self.ledger.record_failed(context.publication_id, error.reason, transient=error.transient)


@pytest.fixture
def publications(tmp_path: Path) -> Iterator[Publications]:
    made = Publications(tmp_path)
    yield made
    made.ledger.close()


def run_channel(root: Path, ledger: Ledger, name: str, **changes: object) -> list[Outcome]:
    """One run of channel ``name`` of the sample config (its commented-out channels included), with ``changes`` to its
    section, as ``carecast run`` makes it: the blog read, drafts made, due drafts published."""
    settings = load_settings(all_channels_config(root, {"channels": {name: changes}}))
    ingest(settings, ledger, "blog")
    return adapt(settings, ledger, name) + publish(settings, ledger, name)
