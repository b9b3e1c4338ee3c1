"""``carecast report``: did it work? Per item and channel: what was sent and delivered, the people who clicked
(link previews counted apart), the provider's own numbers, SMS segments, and the opt-outs each send caused; the best
items; and, from the practice's own clicks, the hours that suit each channel (a suggestion: no schedule moves).

:func:`build` reads the ledger into a :class:`Report`; :func:`render_table`, :func:`render_csv` and
:func:`render_json` print it; :mod:`carecast.charts` draws it; :mod:`carecast.report_mail` sends it.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from carecast.config import Settings
from carecast.ledger import Click, Ledger, PublicationRecord
from carecast.model import now_utc

#: An opt-out within this long after a send of its channel type is counted against that send.
OPT_OUT_WINDOW = timedelta(days=3)
#: Fewer people's clicks than this on a channel suggest no hour: too few to tell one from chance.
MIN_CLICKS_FOR_BEST_TIME = 5
#: What the report says about email opens instead of counting them.
MPP_CAVEAT = (
    "Email opens are not counted: Apple Mail Privacy Protection loads every message's images for the reader, so an "
    "'open' says nothing about a person. Email clicks are counted through the short links, previews apart."
)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass
class Row:
    """One publication of one item on one channel, and what came of it."""

    item_id: str
    title: str
    channel: str
    sent_at: datetime
    sent: int
    delivered: int | None
    people: int = 0
    previews: int = 0
    previews_by: dict[str, int] = field(default_factory=dict)
    engagement: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    segments: int | None = None
    opt_outs: int = 0


@dataclass
class Report:
    """What ``carecast report`` shows for the practice since ``since``."""

    practice: str
    since: datetime
    until: datetime
    rows: list[Row]
    clicks: list[Click]
    best_times: dict[str, list[str]]
    notes: list[str]

    def best_items(self, count: int = 3) -> list[Row]:
        """The rows with the most people's clicks, then the most engagement."""
        return sorted(self.rows, key=lambda row: (row.people, sum(row.engagement.values())), reverse=True)[:count]


def build(settings: Settings, ledger: Ledger, since: datetime, until: datetime) -> Report:
    """The report of what was published from ``since`` to ``until`` (UTC-aware). Raises LedgerError."""
    records = [
        record
        for record in ledger.stream_publications(state="sent", since=since)
        if record.finished_at is None or record.finished_at <= until
    ]
    clicks = [click for click in ledger.clicks(since) if click.at <= until]
    titles = {item.id: item.title for item in ledger.items(sorted({i for r in records for i in r.item_ids}))}
    deliveries = ledger.delivery_counts([record.id for record in records])
    readings = defaultdict(list)
    for reading in ledger.metrics([record.id for record in records]):
        readings[reading.publication_id].append(reading)
    by_link: dict[tuple[str, str], list[Click]] = defaultdict(list)
    for click in clicks:
        by_link[(click.item_id, click.channel)].append(click)
    opt_outs = _opt_outs_per_send(settings, records, ledger.opt_outs(since))
    rows = []
    for record in records:
        counts = deliveries.get(record.id, Counter())
        recipients = sum(counts[state] for state in ("sent", "delivered"))
        segments = _segments(ledger, record) if channel_type(settings, record.channel) == "sms" else None
        for item_id in record.item_ids:
            row = Row(
                item_id=item_id,
                title=titles.get(item_id, item_id),
                channel=record.channel,
                sent_at=record.finished_at or record.claimed_at,
                sent=recipients or 1,
                delivered=counts["delivered"] if counts else None,
                segments=None if segments is None else segments * max(recipients, 1),
                opt_outs=opt_outs.get(record.id, 0),
            )
            recipients_seen: set[int] = set()
            for click in by_link.get((item_id, record.channel), []):
                if click.kind == "person":
                    # A recipient's own code (links.email_per_recipient) counts its person once.
                    row.people += 0 if click.recipient in recipients_seen else 1
                    recipients_seen |= {click.recipient} - {0}
                else:
                    row.previews += 1
                    row.previews_by[click.agent] = row.previews_by.get(click.agent, 0) + 1
            for reading in readings.get(record.id, []):
                for name, value in reading.numbers.items():
                    row.engagement[name] = row.engagement.get(name, 0) + value
                row.problems += [f"{name}: {why}" for name, why in reading.problems.items()]
            rows.append(row)
    notes = [MPP_CAVEAT] if any(channel_type(settings, row.channel) == "newsletter" for row in rows) else []
    return Report(settings.practice.name, since, until, rows, clicks, best_times(settings, clicks), notes)


def channel_type(settings: Settings, instance: str) -> str:
    """The type of channel ``instance``; its own name once it is gone from the config."""
    config = settings.channels.get(instance)
    return instance if config is None else config.type


def _segments(ledger: Ledger, record: PublicationRecord) -> int:
    """SMS segments of one text of ``record`` (every part's, as measured at render time)."""
    measures = ledger.publication_draft(record.id).draft.measures
    return sum(int(part.get("segments", 0)) for part in measures.get("parts", []))


def _opt_outs_per_send(
    settings: Settings, records: list[PublicationRecord], opt_outs: list[tuple[str, str, datetime]]
) -> dict[int, int]:
    """How many opt-outs each send caused: each STOP or unsubscribe counts against the latest send of its channel
    type before it (of its list, for an unsubscribe from one list: ``newsletter:<channel>``), when it came within
    ``OPT_OUT_WINDOW``."""
    sends = sorted(
        (record.finished_at or record.claimed_at, channel_type(settings, record.channel), record.channel, record.id)
        for record in records
    )
    caused: Counter[int] = Counter()
    for kind, _status, at in opt_outs:
        of_type, _, of_list = kind.partition(":")
        before = [
            (when, id)
            for when, type_, channel, id in sends
            if type_ == of_type and of_list in ("", channel) and when <= at <= when + OPT_OUT_WINDOW
        ]
        if before:
            caused[max(before)[1]] += 1
    return dict(caused)


def best_times(settings: Settings, clicks: list[Click]) -> dict[str, list[str]]:
    """Per channel, the two weekday-and-hour slots (practice time) with the most people's clicks, or why none."""
    zone = settings.practice.zone
    per_channel: dict[str, Counter[tuple[int, int]]] = defaultdict(Counter)
    for click in clicks:
        if click.kind == "person":
            local = click.at.astimezone(zone)
            per_channel[click.channel][(local.weekday(), local.hour)] += 1
    suggestions = {}
    for channel in settings.channels:
        slots = per_channel.get(channel, Counter())
        total = sum(slots.values())
        if total < MIN_CLICKS_FOR_BEST_TIME:
            suggestions[channel] = [f"not enough clicks yet ({total} of {MIN_CLICKS_FOR_BEST_TIME})"]
            continue
        suggestions[channel] = [
            f"{WEEKDAYS[day]} {hour:02d}:00-{hour + 1:02d}:00 ({count} of {total} clicks)"
            for (day, hour), count in slots.most_common(2)
        ]
    return suggestions


COLUMNS = ("item", "channel", "sent", "delivered", "people", "previews", "engagement", "segments", "opt_outs")


def _cells(row: Row) -> list[str]:
    engagement = ", ".join(f"{name} {value}" for name, value in sorted(row.engagement.items()))
    return [
        row.title,
        row.channel,
        str(row.sent),
        "" if row.delivered is None else str(row.delivered),
        str(row.people),
        str(row.previews),
        engagement,
        "" if row.segments is None else str(row.segments),
        str(row.opt_outs),
    ]


def render_table(report: Report) -> str:
    """The report as aligned plain-text tables (the terminal's)."""
    lines = [f"{report.practice}: {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d} (UTC)", ""]
    table = [list(COLUMNS), *[_cells(row) for row in report.rows]]
    table = [[cell if len(cell) <= 40 else cell[:39] + "…" for cell in cells] for cells in table]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(COLUMNS))]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip() for cells in table
    ]
    if not report.rows:
        lines.append("(nothing was published in this period)")
    lines += ["", "Best items (people's clicks):"]
    lines += [f"  {row.people:>4}  {row.title} ({row.channel})" for row in report.best_items()]
    previews = Counter[str]()
    for row in report.rows:
        previews.update(row.previews_by)
    if previews:
        lines += ["", "Previews (fetchers, not people): " + ", ".join(f"{k} {v}" for k, v in previews.most_common())]
    problems = sorted({f"{row.channel}: {problem}" for row in report.rows for problem in row.problems})
    if problems:
        lines += ["", "Numbers the providers could not give:", *[f"  {problem}" for problem in problems]]
    lines += ["", "Best time to post, from your own clicks (a suggestion; no schedule was changed):"]
    lines += [f"  {channel}: {'; '.join(slots)}" for channel, slots in report.best_times.items()]
    lines += ["", *report.notes] if report.notes else []
    return "\n".join(lines)


def render_csv(report: Report) -> str:
    """One CSV line per item and channel, every column of the table plus the preview fetchers and the problems."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["item_id", *COLUMNS, "sent_at", "previews_by", "problems"])
    for row in report.rows:
        previews = "; ".join(f"{name} {count}" for name, count in sorted(row.previews_by.items()))
        writer.writerow([row.item_id, *_cells(row), row.sent_at.isoformat(), previews, "; ".join(row.problems)])
    return out.getvalue()


def to_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (``--format json``, the artifact's data)."""
    return {
        "practice": report.practice,
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "rows": [asdict(row) | {"sent_at": row.sent_at.isoformat()} for row in report.rows],
        "best_items": [
            {"item_id": row.item_id, "channel": row.channel, "people": row.people} for row in report.best_items()
        ],
        "best_times": report.best_times,
        "notes": report.notes,
    }


def render_json(report: Report) -> str:
    return json.dumps(to_json(report), indent=2, ensure_ascii=False)


#: The period a report covers unless told otherwise.
DEFAULT_PERIOD = timedelta(days=7)


def weekly(
    settings: Settings,
    ledger: Ledger,
    since: datetime | None,
    form: str,
    charts_dir: Path | None = None,
    now: datetime | None = None,
) -> str:
    """``carecast report``: the report from ``since`` (default a week before ``now``) in ``form`` (table, csv or
    json); with ``charts_dir``, its charts written there as PNG. Raises LedgerError, OSError for the charts."""
    until = now or now_utc()
    report = build(settings, ledger, since or until - DEFAULT_PERIOD, until)
    if charts_dir is not None:
        from carecast.charts import charts  # matplotlib loads slowly: only when charts are asked for

        charts_dir.mkdir(parents=True, exist_ok=True)
        for name, png in charts(report.clicks, settings.practice.zone).items():
            (charts_dir / name).write_bytes(png)
    return {"table": render_table, "csv": render_csv, "json": render_json}[form](report)
