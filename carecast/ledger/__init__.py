"""The ledger: the single truth of what CareCast has seen, drafted and sent (SQLAlchemy; SQLite or PostgreSQL).

One ``Ledger`` facade over parts split by what they record:

- ``content``: every item seen, with its content hash; feed validators (ETag / Last-Modified); skipped items;
- ``drafts``: one draft per channel, account and item set, and approvals;
- ``publications``: claims before sending, ``claimed → sent | failed | unknown``, a multi-step send's progress;
- ``deliveries``: one row per recipient of a publication, claimed before sending;
- ``audience``: subscribers with their consent record, and suppressions;
- ``holds``: drafts the PHI check held, their findings and staff releases;
- ``tokens``: unsubscribe tokens, random ids standing for a recipient of a list;
- ``links``: short links (a random code per item, channel and URL) and their clicks, without who clicked;
- ``metrics``: each publication's engagement numbers as its provider last reported them;
- ``history``: deliveries and suppressions of a recipient, for ``carecast audit``;
- ``schema``: every table; ``migrate`` and ``migrations/``: how a ledger gets them (Alembic); ``store``: the
  engine, its sessions and retries.

Every method is retried while a database failure passes (``ledger.retry_budget``), then raises LedgerError.
"""

from __future__ import annotations

from carecast.config import Settings
from carecast.ledger.audience import AudienceLedger
from carecast.ledger.content import ContentLedger, UpsertReport
from carecast.ledger.deliveries import NOT_TRIED, DeliveryLedger, DeliveryOutcome, DeliveryRecord, part_address
from carecast.ledger.drafts import RENDERED_FROM, DraftLedger, StoredDraft
from carecast.ledger.history import DeliveryEvent, HistoryLedger, SuppressionEvent
from carecast.ledger.holds import HoldLedger, PhiHold
from carecast.ledger.links import Click, LinkLedger, ShortLink
from carecast.ledger.metrics import MetricLedger, MetricReading
from carecast.ledger.publications import (
    IN_FLIGHT,
    TO_RESEND,
    PublicationLedger,
    PublicationRecord,
    Resolution,
    keep_claim_alive,
)
from carecast.ledger.schema import DeliveryState, DraftRow, DraftState, PublicationState
from carecast.ledger.tokens import TokenLedger, UnsubscribeToken

__all__ = [
    "IN_FLIGHT",
    "NOT_TRIED",
    "RENDERED_FROM",
    "TO_RESEND",
    "Click",
    "DeliveryEvent",
    "DeliveryOutcome",
    "DeliveryRecord",
    "DeliveryState",
    "DraftRow",
    "DraftState",
    "Ledger",
    "MetricReading",
    "PhiHold",
    "PublicationRecord",
    "PublicationState",
    "Resolution",
    "ShortLink",
    "StoredDraft",
    "SuppressionEvent",
    "UnsubscribeToken",
    "UpsertReport",
    "keep_claim_alive",
    "open_ledger",
    "part_address",
]


class Ledger(
    ContentLedger,
    DraftLedger,
    PublicationLedger,
    DeliveryLedger,
    AudienceLedger,
    HoldLedger,
    TokenLedger,
    HistoryLedger,
    LinkLedger,
    MetricLedger,
):
    """All reads and writes of CareCast's state; every method raises LedgerError when the database fails."""


def open_ledger(settings: Settings) -> Ledger:
    """The practice's ledger, its schema brought up to date; raises LedgerError when it cannot be opened."""
    return Ledger(settings.ledger_url(), retry_budget=settings.ledger.retry_budget)
