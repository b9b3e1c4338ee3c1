"""The ledger: the single truth of what CareCast has seen, drafted and sent (SQLAlchemy; SQLite or PostgreSQL).

One ``Ledger`` facade over parts split by what they record:

- ``content``: every item seen, with its content hash; feed validators (ETag / Last-Modified); skipped items;
- ``drafts``: one draft per channel, account and item set, and approvals;
- ``publications``: claims before sending, ``claimed → sent | failed | unknown``, a multi-step send's progress;
- ``deliveries``: one row per recipient of a publication, claimed before sending;
- ``audience``: subscribers with their consent record, and suppressions;
- ``holds``: drafts the PHI check held, their findings and staff releases;
- ``tokens``: unsubscribe tokens, random ids standing for a recipient of a list;
- ``history``: deliveries and suppressions of a recipient, for ``carecast audit``;
- ``schema``: every table; ``store``: the engine and its sessions.

Every method raises LedgerError when the database fails.
"""

from __future__ import annotations

from carecast.ledger.audience import AudienceLedger
from carecast.ledger.content import ContentLedger, UpsertReport
from carecast.ledger.deliveries import DeliveryLedger, DeliveryRecord
from carecast.ledger.drafts import DraftLedger, StoredDraft
from carecast.ledger.history import DeliveryEvent, HistoryLedger, SuppressionEvent
from carecast.ledger.holds import HoldLedger, PhiHold
from carecast.ledger.publications import PublicationLedger, PublicationRecord
from carecast.ledger.schema import DeliveryState, DraftRow, DraftState, PublicationState
from carecast.ledger.tokens import TokenLedger, UnsubscribeToken

__all__ = [
    "DeliveryEvent",
    "DeliveryRecord",
    "DeliveryState",
    "DraftRow",
    "DraftState",
    "Ledger",
    "PhiHold",
    "PublicationRecord",
    "PublicationState",
    "StoredDraft",
    "SuppressionEvent",
    "UnsubscribeToken",
    "UpsertReport",
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
):
    """All reads and writes of CareCast's state; every method raises LedgerError when the database fails."""
