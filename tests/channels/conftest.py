"""Helpers shared by the channel tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from carecast import pipeline
from carecast.audience import load_audience
from carecast.channel import Outbox, PublishContext
from carecast.errors import PublishError
from carecast.ledger import Ledger
from carecast.model import Draft
from carecast.practice import load_settings
from tests.conftest import SAMPLE_CONFIG, commented_channels, write_config


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


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A ledger on SQLite that several runs of a test share."""
    opened = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield opened
    opened.close()


def run_channel(root: Path, ledger: Ledger, name: str, **changes: object) -> list[pipeline.Outcome]:
    """One run of channel ``name`` of the sample config (its commented-out channels included), with ``changes`` to its
    section, as ``carecast run`` makes it: the blog read, drafts made, due drafts published."""
    sample = commented_channels()
    sample["channels"][name] = {**sample["channels"].get(name, {}), **changes}
    settings = load_settings(write_config(root, sample))
    pipeline.ingest(settings, ledger, "blog")
    return pipeline.adapt(settings, ledger, name) + pipeline.publish(settings, ledger, name)
