"""The weekly report as staff receive it: one email (HTML for a phone, a plain-text part, the charts inline) to the
staff address, sent through the newsletter's SMTP settings (``Channel.send_staff_mail``), or written to the outbox
(``outbox/report/``) when no channel can send mail. Also the Markdown of the Prefect artifact."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from carecast.channel import Channel, Outbox
from carecast.config import Settings
from carecast.report import Report, Row, render_table

#: The outbox folder of reports nobody could mail.
OUTBOX_FOLDER = "report"


def _numbers(row: Row) -> str:
    parts = [f"sent {row.sent}"]
    if row.delivered is not None:
        parts.append(f"delivered {row.delivered}")
    parts += [f"people {row.people}", f"previews {row.previews}"]
    parts += [f"{name} {value}" for name, value in sorted(row.engagement.items())]
    if row.segments is not None:
        parts.append(f"segments {row.segments}")
    if row.opt_outs:
        parts.append(f"opt-outs {row.opt_outs}")
    return " · ".join(parts)


def report_html(report: Report, images: Mapping[str, str]) -> str:
    """The report as one narrow column (cards, not a wide table): readable on a 375 px phone without zooming.
    ``images`` maps a chart's file name to its ``src`` (a ``cid:`` in the email, a data URI in the artifact)."""
    esc = html.escape
    blocks = [
        f'<h1 style="font-size:20px;margin:0 0 4px">Did it work? {esc(report.practice)}</h1>',
        f'<p style="color:#555;margin:0 0 16px">{report.since:%b %d} to {report.until:%b %d, %Y}</p>',
        '<h2 style="font-size:17px">Best items</h2><ol style="padding-left:20px">',
        *[
            f"<li>{esc(row.title)} <small>({esc(row.channel)}): {row.people} people</small></li>"
            for row in report.best_items()
        ],
        "</ol>",
    ]
    for name, src in images.items():
        blocks.append(f'<img src="{src}" alt="{esc(name)}" style="width:100%;max-width:375px;height:auto">')
    blocks.append('<h2 style="font-size:17px">Every send</h2>')
    for row in report.rows:
        blocks.append(
            '<div style="border-top:1px solid #ddd;padding:8px 0">'
            f"<strong>{esc(row.title)}</strong><br><small>{esc(row.channel)}, {row.sent_at:%a %b %d %H:%M} UTC</small>"
            f"<br>{esc(_numbers(row))}"
            + "".join(f'<br><small style="color:#a33">{esc(problem)}</small>' for problem in row.problems)
            + "</div>"
        )
    blocks.append('<h2 style="font-size:17px">Best time to post</h2><ul style="padding-left:20px">')
    blocks += [f"<li>{esc(channel)}: {esc('; '.join(slots))}</li>" for channel, slots in report.best_times.items()]
    blocks.append("</ul><p><small>A suggestion from your own clicks: no schedule was changed.</small></p>")
    blocks += [f'<p><small style="color:#555">{esc(note)}</small></p>' for note in report.notes]
    body = "".join(blocks)
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        f'<body style="font-family:system-ui,Arial,sans-serif;font-size:15px;max-width:600px;margin:0 auto;'
        f'padding:12px">{body}</body></html>'
    )


def report_markdown(report: Report, charts: Mapping[str, bytes]) -> str:
    """The Prefect artifact: the charts (as data URIs, which the UI shows) and the report as short lines that a
    phone's width does not cut, like the email's."""
    lines = [f"# Did it work? {report.practice}", f"{report.since:%b %d} to {report.until:%b %d, %Y}", ""]
    lines += [f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})" for name, png in charts.items()]
    lines += ["", "## Best items", ""]
    lines += [f"1. {row.title} ({row.channel}): {row.people} people" for row in report.best_items()]
    lines += ["", "## Every send", ""]
    for row in report.rows:
        lines.append(f"- **{row.title}** ({row.channel}, {row.sent_at:%a %b %d %H:%M} UTC): {_numbers(row)}")
        lines += [f"  - *{problem}*" for problem in row.problems]
    lines += ["", "## Best time to post", ""]
    lines += [f"- {channel}: {'; '.join(slots)}" for channel, slots in report.best_times.items()]
    lines += ["", "A suggestion from your own clicks: no schedule was changed.", "", *report.notes]
    return "\n".join(lines)


def report_message(settings: Settings, report: Report, charts: Mapping[str, bytes], to: str) -> EmailMessage:
    """The weekly report email to ``to``: text, then HTML with the charts inline (``cid:``)."""
    message = EmailMessage()
    message["Subject"] = f"{settings.practice.short_name}: did it work? Week to {report.until:%b %d}"
    message["From"] = settings.practice.email
    message["To"] = to
    message["Date"] = format_datetime(report.until)
    message["Message-ID"] = make_msgid(domain=settings.practice.host or None)
    message.set_content(render_table(report))
    ids = {name: make_msgid(domain=settings.practice.host or None) for name in charts}
    message.add_alternative(report_html(report, {name: f"cid:{cid[1:-1]}" for name, cid in ids.items()}), "html")
    html_part = message.get_body(("html",))
    assert isinstance(html_part, EmailMessage)  # set just above
    for name, png in charts.items():
        html_part.add_related(png, "image", "png", cid=ids[name], filename=name)
    return message


def send_report(message: EmailMessage, channels: Mapping[str, Channel], outbox: Outbox, key: str) -> str:
    """Send ``message`` through the first channel that can mail staff (the newsletter's SMTP settings), else write it
    to ``outbox/report/<key>.eml``; say where it went. Raises PublishError when it could not be sent or written."""
    for channel in channels.values():
        sent = channel.send_staff_mail(message)
        if sent is not None:
            return sent
    return str(outbox.write(OUTBOX_FOLDER, key, ".eml", bytes(message)))
