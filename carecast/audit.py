"""The consent and send record of recipients: what ``carecast audit`` prints and each run's audit artifact shows.

For a recipient (a phone number or an email address) or everyone, one row per event, oldest first:

- ``opt-in``: the consent on file (when, how, and the wording of the audience file's consent line);
- ``message``: each text or email claimed for them, with its delivery status (``sent``, then ``delivered`` or
  ``failed`` from the provider's callbacks; ``deferred`` while outside quiet hours), and the consent it relied on;
- ``skipped``: a publication of their channel that fanned out to others but not to them, with the reason
  (the opt-out in force then, or no consent on file, or their status in the audience file);
- ``opt-out``: the STOP, unsubscribe, bounce or invalid number that ended their messages.

Every row names the audience that selected the recipient (``providers``, ``discharged / three-to-twelve-months``)
or the subscriber file they are on (``audience/sms.csv``): a message's is the one its publication recorded when it
went out, whatever the config says now. People of an audience file appear as they are in it today.

Skipped rows are derived from the publications and the suppressions (when each began), not recorded one by one.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal

from carecast.audience import ADDRESS_COLUMN, Subscriber
from carecast.audiences import stream_members
from carecast.config import Settings
from carecast.ledger import Ledger, SuppressionEvent
from carecast.recipients import audience_label

Format = Literal["table", "csv", "json"]
COLUMNS = ("when", "channel", "audience", "recipient", "event", "status", "detail", "consent")


@dataclass(frozen=True)
class AuditRow:
    """One event of a recipient's record; ``when`` is UTC."""

    when: datetime
    channel: str
    audience: str
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
    subscribers, listed = _subscribers(settings, ledger, recipient)
    suppressions = {(event.channel_type, event.address): event for event in ledger.suppression_events(recipient)}
    rows = _consent_rows(subscribers, listed)
    selections = ledger.selections()
    reached: dict[int, set[str]] = {}
    rows += _message_rows(settings, ledger, recipient, types, subscribers, selections, reached)
    rows += _skipped_rows(settings, ledger, types, subscribers, selections, reached, suppressions)
    rows += [
        AuditRow(
            event.at,
            event.channel_type,
            _scope_label(event.channel_type),
            event.address,
            "opt-out",
            event.status,
            event.reason,
            "",
        )
        for event in suppressions.values()
    ]
    rows = [row for row in rows if since is None or row.when >= since]
    return sorted(rows, key=lambda row: (row.when, row.recipient, row.event))


#: Who each audience (or subscriber file) holds, keyed (audience label, channel type, address).
_Held = dict[tuple[str, str, str], Subscriber]


def _subscribers(settings: Settings, ledger: Ledger, recipient: str | None) -> tuple[_Held, dict[str, datetime]]:
    """Who each audience holds (``recipient`` only, when given), and when each audience's file was listed."""
    subscribers = {
        (audience_label(settings, channel_type, None), channel_type, subscriber.address): subscriber
        for channel_type in ADDRESS_COLUMN
        for subscriber in ledger.subscribers(channel_type)
        if recipient is None or subscriber.address == recipient
    }
    listed: dict[str, datetime] = {}
    for name, channel_type in sorted(_addressed(settings)):
        for member, _ in stream_members(settings.audiences[name], channel_type, settings.base_dir):
            if member is not None and (recipient is None or member.subscriber.address == recipient):
                subscribers.setdefault((name, channel_type, member.subscriber.address), member.subscriber)
        # A business contact has no consent date: they are listed as of their file's last export.
        listed[name] = datetime.fromtimestamp(
            settings.path(settings.audiences[name].files[0].file).stat().st_mtime, UTC
        )
    return subscribers, listed


def _consent_rows(subscribers: _Held, listed: dict[str, datetime]) -> list[AuditRow]:
    """Each subscriber's opt-in: their consent, or their business contact's listing."""
    rows = [
        AuditRow(
            subscriber.consent_at,
            channel_type,
            label,
            address,
            "opt-in",
            "consent",
            subscriber.consent_method,
            subscriber.consent_text,
        )
        for (label, channel_type, address), subscriber in subscribers.items()
        if subscriber.consent_at is not None
    ]
    rows += [
        AuditRow(listed[label], channel_type, label, address, "opt-in", "business contact", "", _consent(subscriber))
        for (label, channel_type, address), subscriber in subscribers.items()
        if subscriber.consent_at is None and subscriber.business_contact
    ]
    return rows


def _message_rows(
    settings: Settings,
    ledger: Ledger,
    recipient: str | None,
    types: dict[str, str],
    subscribers: _Held,
    selections: dict[int, tuple[str, str | None]],
    reached: dict[int, set[str]],
) -> list[AuditRow]:
    """Each message addressed to someone, with the consent it relied on; fills ``reached`` (publication: addresses)."""
    rows = []
    for event in ledger.delivery_events(recipient):
        reached.setdefault(event.publication_id, set()).add(event.address)
        detail = event.error or (f"provider id {event.provider_id}" if event.provider_id else "")
        channel_type = types.get(event.channel, "")
        label, segment = selections.get(event.publication_id, (audience_label(settings, channel_type, None), None))
        consent = _consent(subscribers.get((label, channel_type, event.address)))
        shown = label if segment is None else f"{label} / {segment}"
        rows.append(
            AuditRow(event.claimed_at, event.channel, shown, event.address, "message", event.state, detail, consent)
        )
    return rows


def _skipped_rows(
    settings: Settings,
    ledger: Ledger,
    types: dict[str, str],
    subscribers: _Held,
    selections: dict[int, tuple[str, str | None]],
    reached: dict[int, set[str]],
    suppressions: dict[tuple[str, str], SuppressionEvent],
) -> list[AuditRow]:
    """Who a fanned-out publication's audience held but did not reach, and why."""
    rows = []
    fanned_out = {
        record.id: record
        for record in ledger.publications()
        if ledger.deliveries(record.id) and record.channel in types
    }
    for publication in fanned_out.values():
        channel_type = types[publication.channel]
        label, segment = selections.get(publication.id, (audience_label(settings, channel_type, None), None))
        if segment is not None:
            continue  # who was in the segment then is not known now; those addressed have their message rows
        for (held_by, kind, address), subscriber in subscribers.items():
            if (held_by, kind) != (label, channel_type) or address in reached.get(publication.id, set()):
                continue
            why = _skipped(
                subscriber,
                _suppression(suppressions, channel_type, publication.channel, address),
                publication.claimed_at,
            )
            rows.append(
                AuditRow(
                    publication.claimed_at,
                    publication.channel,
                    label,
                    address,
                    "skipped",
                    "not sent",
                    why,
                    _consent(subscriber),
                )
            )
    return rows


def _addressed(settings: Settings) -> set[tuple[str, str]]:
    """(audience, channel type) of every channel addressing an audience."""
    return {(config.audience, config.type) for config in settings.channels.values() if config.audience is not None}


def _suppression(
    suppressions: dict[tuple[str, str], SuppressionEvent], channel_type: str, channel: str, address: str
) -> SuppressionEvent | None:
    """The opt-out in force for ``address`` on ``channel``: of every list of the type, or of the channel's list."""
    return suppressions.get((channel_type, address)) or suppressions.get((f"{channel_type}:{channel}", address))


def _scope_label(scope: str) -> str:
    """What an opt-out covers, in words: every list of a type, or one list."""
    kind, _, channel = scope.partition(":")
    return f"{channel} list" if channel else {"sms": "all texts", "newsletter": "all email"}.get(kind, f"all {kind}")


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
    if subscriber is not None and subscriber.consent_at is None and subscriber.business_contact:
        return "business contact (CAN-SPAM: opt-out honoured)"
    if subscriber is None or subscriber.consent_at is None:
        return "no consent on file"
    return f"{subscriber.consent_at:%Y-%m-%d} {subscriber.consent_method}: {subscriber.consent_text}"


def _skipped(subscriber: Subscriber, suppression: SuppressionEvent | None, at: datetime) -> str:
    if suppression is not None and suppression.at <= at:
        return f"{suppression.status} since {suppression.at:%Y-%m-%d %H:%M} UTC ({suppression.reason})"
    return subscriber.exclusion_reason or "not in the audience when it went out, or outside their quiet hours"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
