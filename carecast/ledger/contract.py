"""What a channel may ask of the ledger: the narrow side of the ledger a plugin is handed (``PublishContext.ledger``).

The :class:`~carecast.ledger.Ledger` facade has some fifty methods; a channel needs these, grouped by what they are
for. The real ``Ledger`` satisfies :class:`ChannelLedger` structurally (mypy checks it wherever the pipeline hands a
``Ledger`` to a ``PublishContext``), so the ledger may change underneath as long as these keep their meaning. Every
method raises LedgerError when the database fails (after the ledger's own retries); a claim of a recipient or part
already claimed raises AlreadyClaimed.

A plugin imports this through :mod:`carecast.plugin`, never from here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from carecast.audience import Subscriber
from carecast.ledger.deliveries import DeliveryOutcome, DeliveryRecord
from carecast.ledger.tokens import UnsubscribeToken


class ChannelLedger(Protocol):
    """The ledger as a channel sees it: claims and outcomes of recipients and parts, a send's progress, the
    audience and its suppressions, unsubscribe tokens and per-recipient link codes."""

    # Claim a recipient (or a thread's part, ``part_address(n)``) before sending to it; record how it ended after.
    def claim_delivery(self, publication_id: int, address: str, *, since: datetime | None = None) -> None: ...

    def claim_deliveries(
        self, publication_id: int, addresses: Sequence[str], finished: Sequence[DeliveryOutcome] = ()
    ) -> list[str]: ...

    def finish_delivery(
        self,
        publication_id: int,
        address: str,
        state: Literal["sent", "failed", "deferred"],
        *,
        provider_id: str | None = None,
        error: str | None = None,
        transient: bool = False,
    ) -> None: ...

    def finish_deliveries(
        self, publication_id: int, outcomes: Sequence[DeliveryOutcome], claimed: Sequence[str] = ()
    ) -> None: ...

    def mark_unknown(self, publication_id: int, address: str, error: str) -> None: ...

    # Read what has been claimed and recorded (a resumed send skips what is done).
    def deliveries(self, publication_id: int, addresses: Sequence[str] | None = None) -> dict[str, DeliveryRecord]: ...

    def delivery_state_counts(self, publication_id: int) -> Counter[tuple[str, bool]]: ...

    def delivery_tally(self, publication_id: int) -> tuple[list[str], Counter[str]]: ...

    # The provider's later word on a delivery (a status callback).
    def delivery_by_provider_id(self, provider_id: str) -> DeliveryRecord | None: ...

    def settle_delivery(
        self, provider_id: str, state: Literal["delivered", "failed"], *, error: str | None = None
    ) -> None: ...

    # A multi-step send's progress (an upload's id, a thread's record keys), saved before the step it enables.
    def progress(self, publication_id: int) -> dict[str, Any]: ...

    def save_progress(self, publication_id: int, progress: dict[str, Any]) -> None: ...

    # The audience, streamed, and who must not be contacted.
    def stream_subscribers(self, channel_type: str, page: int = 1000) -> Iterator[Subscriber]: ...

    def record_selection(self, publication_id: int, audience: str, segment: str | None) -> None: ...

    def suppressed(self, scopes: Iterable[str]) -> dict[str, str]: ...

    def suppress(self, channel_type: str, address: str, status: str, reason: str) -> None: ...

    def unsuppress(self, channel_type: str, address: str) -> None: ...

    # Unsubscribe tokens (a newsletter's List-Unsubscribe) and per-recipient link codes.
    def issue_unsubscribe_tokens(self, channel_type: str, list_id: str, addresses: Sequence[str]) -> dict[str, str]: ...

    def unsubscribe_token(self, token: str) -> UnsubscribeToken | None: ...

    def use_unsubscribe_token(self, token: str) -> None: ...

    def recipient_codes(
        self, codes: Sequence[str], channel_type: str, addresses: Sequence[str]
    ) -> dict[tuple[str, str], str]: ...
