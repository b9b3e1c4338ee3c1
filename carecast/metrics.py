"""Each channel's own numbers for the practice's recent posts, read from its provider (``Channel.engagement``) and
kept in the ledger for the report: the ``metrics/<practice>`` deployment runs :func:`read_metrics` on a schedule.

A channel that cannot be asked (no credentials, an expired token, the provider down) gives a line saying so, and
the others are still read: a missing number is never a failed run.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from carecast.channel import Channel
from carecast.config import Settings
from carecast.errors import CareCastError
from carecast.ledger import Ledger, PublicationRecord
from carecast.model import now_utc


def recent_posts(ledger: Ledger, channel: str, since: datetime) -> list[PublicationRecord]:
    """The channel's publications sent since ``since`` that the provider gave an id."""
    return [
        record
        for record in ledger.stream_publications(channel=channel, state="sent", since=since)
        if record.provider_ids
    ]


def read_metrics(
    settings: Settings, ledger: Ledger, channels: Mapping[str, Channel], now: datetime | None = None
) -> list[str]:
    """Read every channel's numbers for its posts younger than ``report.metrics_days`` and keep them; one line per
    channel saying what was read or why not, and one per problem the provider reported. Raises LedgerError."""
    since = (now or now_utc()) - timedelta(days=settings.report.metrics_days)
    lines = []
    for name, channel in channels.items():
        if type(channel).engagement is Channel.engagement:
            continue  # no provider numbers (SMS: its delivery reports are in the ledger already; email: clicks)
        posts = recent_posts(ledger, name, since)
        if not posts:
            continue
        by_id = {provider_id: record for record in posts for provider_id in record.provider_ids}
        try:
            answers = channel.engagement(list(by_id))
        except CareCastError as exc:
            lines.append(f"{name}: numbers not read: {exc}")
            continue
        if not answers:
            lines.append(f"{name}: no numbers for {len(posts)} posts (without credentials it publishes to the outbox)")
            continue
        for key, answer in answers.items():
            # A per-place answer (GBP) is kept with the channel's newest post.
            record = by_id.get(key, posts[-1])
            ledger.save_metrics(record.id, key, answer.numbers, answer.problems)
            lines += [f"{name}: {metric}: {why}" for metric, why in answer.problems.items()]
        lines.append(f"{name}: numbers read for {len(answers)} of {len(by_id)} posts")
    return lines
