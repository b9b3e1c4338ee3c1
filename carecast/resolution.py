"""Settling what a run left ``unknown``, once staff checked with the provider: the one core of ``carecast resolve``
and of the Prefect form (flows/resolve.py), so both settle alike and ask the provider alike.

``sent`` is checked first where the provider keeps a record to ask (Twilio's message list): a recipient it has no
record of is refused (:class:`~carecast.errors.NotAtProvider`) rather than recorded as sent. Where it keeps none
(an SMTP server), staff's word stands.
"""

from __future__ import annotations

from collections.abc import Callable

from carecast.channel import Channel
from carecast.errors import NotAtProvider
from carecast.ledger import Ledger, Resolution, part_address

#: The configured channel of an instance name, made only when the provider must be asked.
ChannelOf = Callable[[str], Channel]


def address_of(recipient: str | None, part: int | None) -> str | None:
    """What one settles: a recipient, a part of a thread (``part_address``), or None for every unknown one."""
    return recipient if part is None else part_address(part)


def settle(
    ledger: Ledger,
    channel_of: ChannelOf,
    publication_id: int,
    decision: Resolution,
    *,
    address: str | None = None,
    provider_id: str | None = None,
) -> str:
    """Settle the publication's unknown recipients or parts (``address``, else all) as ``decision``; returns what
    was done and what happens next, for staff.

    Raises NotAtProvider when ``sent`` is claimed for recipients the provider has no record of (nothing settled);
    LedgerError as :meth:`Ledger.resolve` does; CredentialError or PublishError when the provider cannot be asked.
    """
    if decision == "sent" and (missing := _not_at_provider(ledger, channel_of, publication_id, address)):
        raise NotAtProvider(publication_id, missing)
    settled = ledger.resolve(publication_id, decision, address=address, provider_id=provider_id)
    [record] = ledger.publications(ids=[publication_id])
    after = "the next run finishes it" if record.state == "failed" and record.transient else record.state
    return f"publication {publication_id}: {settled} settled ({decision}); {after}"


def _not_at_provider(ledger: Ledger, channel_of: ChannelOf, publication_id: int, address: str | None) -> list[str]:
    """The unknown recipients (``address``, else all) of the publication its provider has no record of; empty when
    the provider cannot be asked. Raises as :meth:`Channel.not_at_provider` does."""
    unknown = ledger.unknown_deliveries([publication_id]).get(publication_id, [])
    addresses = [d.address for d in unknown if not d.is_part and (address is None or d.address == address)]
    if not addresses:
        return []
    draft = ledger.publication_draft(publication_id).draft
    return channel_of(draft.channel).not_at_provider(draft, addresses) or []
