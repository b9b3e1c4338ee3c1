"""Helpers shared by the channel tests."""

from __future__ import annotations

from pathlib import Path

from carecast.ledger import Ledger
from channels.base import Outbox, PublishContext


def outbox_context(root: Path, publication_id: int = 1) -> PublishContext:
    """Publish to an outbox under ``root`` as publication ``publication_id`` (file ``<id:06d>.<suffix>``)."""
    return PublishContext(publication_id, Outbox(root), Ledger(f"sqlite:///{root.parent / 'ledger.db'}"))
