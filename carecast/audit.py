"""The consent and send record of recipients: what ``carecast audit`` prints and each run's audit artifact shows.

For a recipient (a phone number or an email address) or everyone, one row per event, oldest first:

- ``opt-in``: the consent on file (when, how, and the wording of the audience file's consent line);
- ``message``: each text or email claimed for them, with its delivery status (``sent``, then ``delivered`` or
  ``failed`` from the provider's callbacks; ``deferred`` while outside quiet hours), and the consent it relied on;
- ``skipped``: a publication of their channel that fanned out to others but not to them, with the reason
  (the opt-out in force then, or no consent on file, or their status in the audience file);
- ``opt-out``: the STOP, unsubscribe, bounce or invalid number that ended their messages.

Skipped rows are derived from the publications and the suppressions (when each began), not recorded one by one.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

from carecast.audience import ADDRESS_COLUMN, Subscriber
from carecast.config import Settings
from carecast.ledger import Ledger, SuppressionEvent

Format = Literal["table", "csv", "json"]
COLUMNS = ("when", "channel", "recipient", "event", "status", "detail", "consent")


@dataclass(frozen=True)
class AuditRow:
    """One event of a recipient's record; ``when`` is UTC."""

    when: datetime
    channel: str
    recipient: str
    event: Literal["opt-in", "message", "skipped", "opt-out"]
    status: str
    detail: str
    consent: str

    def cells(self) -> dict[str, str]:
        return {**asdict(self), "when": self.when.isoformat(timespec="seconds")}


def audit(
    settings: Settings, ledger: Ledger, recipient: str | None = None, since: datetime | None = None
) -> list[AuditRow]:
    """Every event of ``recipient`` (everyone's when None) at or after ``since``, oldest first."""
    types = {name: config.type for name, config in settings.channels.items()}
    subscribers = {
        (channel_type, subscriber.address): subscriber
        for channel_type in ADDRESS_COLUMN
        for subscriber in ledger.subscribers(channel_type)
        if recipient is None or subscriber.address == recipient
    }
    suppressions = {(event.channel_type, event.address): event for event in ledger.suppression_events(recipient)}
    rows = [
        AuditRow(
            subscriber.consent_at,
            channel_type,
            address,
            "opt-in",
            "consent",
            subscriber.consent_method,
            subscriber.consent_text,
        )
        for (channel_type, address), subscriber in subscribers.items()
        if subscriber.consent_at is not None
    ]
    deliveries = ledger.delivery_events(recipient)
    reached: dict[int, set[str]] = {}
    for event in deliveries:
        reached.setdefault(event.publication_id, set()).add(event.address)
        detail = event.error or (f"provider id {event.provider_id}" if event.provider_id else "")
        consent = _consent(subscribers.get((types.get(event.channel, ""), event.address)))
        rows.append(AuditRow(event.claimed_at, event.channel, event.address, "message", event.state, detail, consent))
    fanned_out = {
        record.id: record
        for record in ledger.publications()
        if ledger.deliveries(record.id) and record.channel in types
    }
    for publication in fanned_out.values():
        for (channel_type, address), subscriber in subscribers.items():
            if types[publication.channel] != channel_type or address in reached.get(publication.id, set()):
                continue
            why = _skipped(subscriber, suppressions.get((channel_type, address)), publication.claimed_at)
            rows.append(
                AuditRow(
                    publication.claimed_at,
                    publication.channel,
                    address,
                    "skipped",
                    "not sent",
                    why,
                    _consent(subscriber),
                )
            )
    rows += [
        AuditRow(event.at, event.channel_type, event.address, "opt-out", event.status, event.reason, "")
        for event in suppressions.values()
    ]
    rows = [row for row in rows if since is None or row.when >= since]
    return sorted(rows, key=lambda row: (row.when, row.recipient, row.event))


def render(rows: Sequence[AuditRow], form: Format) -> str:
    """The rows as a readable table, CSV (with a header) or a JSON array."""
    cells = [row.cells() for row in rows]
    if form == "json":
        return json.dumps(cells, indent=2, ensure_ascii=False)
    if form == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(cells)
        return buffer.getvalue().rstrip("\n")
    if not cells:
        return "nothing recorded"
    shown = [{**row, "consent": _clip(row["consent"], 60), "detail": _clip(row["detail"], 60)} for row in cells]
    widths = {column: max(len(column), *(len(row[column]) for row in shown)) for column in COLUMNS}
    lines = ["  ".join(column.ljust(widths[column]) for column in COLUMNS)]
    lines.append("  ".join("-" * widths[column] for column in COLUMNS))
    lines += ["  ".join(row[column].ljust(widths[column]) for column in COLUMNS).rstrip() for row in shown]
    return "\n".join(lines)


def _consent(subscriber: Subscriber | None) -> str:
    if subscriber is None or subscriber.consent_at is None:
        return "no consent on file"
    return f"{subscriber.consent_at:%Y-%m-%d} {subscriber.consent_method}: {subscriber.consent_text}"


def _skipped(subscriber: Subscriber, suppression: SuppressionEvent | None, at: datetime) -> str:
    if suppression is not None and suppression.at <= at:
        return f"{suppression.status} since {suppression.at:%Y-%m-%d %H:%M} UTC ({suppression.reason})"
    return subscriber.exclusion_reason or "not in the audience when it went out, or outside their quiet hours"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
