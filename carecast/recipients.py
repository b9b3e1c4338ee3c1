"""Who a newsletter or SMS channel sends to: its audience's people (segment, consent and opt-outs applied), or
without an ``audience`` the channel type's subscriber file as brought into the ledger.

Opt-outs are scoped so that the law's words hold: a STOP is recorded for the channel type (``sms``), so it stops
every text from the practice's numbers whatever audience the number is in; an email unsubscribe from one list is
recorded for that list (``newsletter:<channel>``), and "all email from this practice" for the type
(``newsletter``), which every list honours.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING

from carecast.audience import ADDRESS_COLUMN, Subscriber
from carecast.audiences import AudienceConfig, stream_members
from carecast.config import Settings
from carecast.ledger.contract import ChannelLedger

if TYPE_CHECKING:
    from carecast.channel import Channel, PublishContext

log = logging.getLogger(__name__)


def list_scope(channel_type: str, instance: str, audience: str | None) -> str:
    """What an unsubscribe from ``instance``'s list suppresses: the list alone when the channel addresses an
    audience, else the channel type (the subscriber file is the type's one list)."""
    return channel_type if audience is None else f"{channel_type}:{instance}"


def audience_label(settings: Settings, channel_type: str, audience: str | None) -> str:
    """How the audit names who a channel addresses: its audience (``providers``), or without one the subscriber
    file (``audience/newsletter.csv``)."""
    return f"{settings.audience.as_posix()}/{channel_type}.csv" if audience is None else audience


def addressed(channel: Channel, context: PublishContext) -> Iterator[Subscriber]:
    """:func:`recipients` of the publication ``context`` sends, addressed by ``channel``'s ``audience`` and
    ``segment``, once the ledger records who it addresses (for the audit).

    Raises LedgerError when it cannot be recorded; ConfigError as :func:`recipients` does.
    """
    settings, config = channel.settings, channel.config
    context.ledger.record_selection(
        context.publication_id, audience_label(settings, channel.name, config.audience), config.segment
    )
    today = context.now.astimezone(settings.practice.zone).date()
    return recipients(settings, context.ledger, channel.instance, channel.name, config.audience, config.segment, today)


def recipients(
    settings: Settings,
    ledger: ChannelLedger,
    instance: str,
    channel_type: str,
    audience_name: str | None,
    segment_name: str | None,
    today: date,
) -> Iterator[Subscriber]:
    """Everyone ``instance`` addresses, one at a time, each with their status in force (an opt-out recorded for the
    type or for this list is their status) and, when an audience leaves them out, why (``excluded``).

    Without an audience: the type's subscribers from the ledger, a page at a time. With one: its files streamed
    through their mapping; people outside the segment are not addressed at all; rows that cannot be used are
    counted and logged once. Raises ConfigError when an audience file cannot be read.
    """
    if audience_name is None:
        yield from ledger.stream_subscribers(channel_type)
        return
    audience = settings.audiences[audience_name]
    segment = audience.segments.get(segment_name) if segment_name else None
    suppressed = ledger.suppressed([channel_type, list_scope(channel_type, instance, audience_name)])
    excluded = _excluded(settings, audience)
    unusable: Counter[str] = Counter()
    for member, problem in stream_members(audience, channel_type, settings.base_dir):
        if member is None:
            unusable[(problem or "").split(": ", 1)[-1]] += 1
            continue
        if segment is not None and segment.reason_out(member, today) is not None:
            continue
        subscriber = member.subscriber
        if (status := suppressed.get(subscriber.address)) is not None:
            subscriber = replace(subscriber, status=status)  # type: ignore[arg-type]
        elif shared := sorted(member.addresses & excluded.keys()):
            subscriber = replace(subscriber, excluded=f"in the {excluded[shared[0]]} audience")
        yield subscriber
    if unusable:
        reasons = ", ".join(f"{count} {why}" for why, count in sorted(unusable.items()))
        log.warning(
            "%s: %d row(s) of audience %s cannot be used: %s", instance, unusable.total(), audience_name, reasons
        )


def _excluded(settings: Settings, audience: AudienceConfig) -> dict[str, str]:
    """The addresses of the audiences ``audience`` excludes, each with the audience it is in."""
    found: dict[str, str] = {}
    for name in audience.exclude:
        # Both columns: a provider's mobile in a patients' export is theirs whichever address the channel uses.
        for column_type in ADDRESS_COLUMN:
            for member, _ in stream_members(settings.audiences[name], column_type, settings.base_dir):
                for address in member.addresses if member is not None else ():
                    found.setdefault(address, name)
    return found


def chosen_by_care(settings: Settings, instance: str) -> bool:
    """Whether channel ``instance`` addresses people chosen by their care (a segment by discharge date): receiving
    its message tells their care, so it may name no condition or treatment at all (the PHI check's ``any_health``).
    """
    config = settings.channels.get(instance)
    if config is None or config.audience is None or config.segment is None:
        return False
    segment = settings.audiences[config.audience].segments[config.segment]
    return segment.discharged_after is not None or segment.discharged_before is not None
