"""What the scenarios are made of: long texts, RSS feeds, audience files, items, and the baselines' own
SQLite ledger.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from bench.scenarios.base import CHUNK, OPEN, SENTENCES


def long_text(number: int, sentences: int = 14) -> str:
    """A long, varied summary (about 100 words per 7 sentences): X threads it, SMS shortens it."""
    return " ".join(SENTENCES[(number + i) % len(SENTENCES)] for i in range(sentences)) + f" (tip {number})"


def rss_feed(title: str, count: int, first: int = 0, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> bytes:
    """An RSS 2.0 feed of ``count`` items with HTML summaries and relative links, newest first; post ``n`` is
    published ``n`` hours after ``start``."""
    entries = []
    for number in range(first + count - 1, first - 1, -1):
        html = f"<p>{long_text(number, 5)}</p><p><a href='/blog/post-{number}'>Read more</a> <b>today</b>.</p>"
        entries.append(
            f"<item><title>Post {number} of {title}</title><link>https://www.oakviewpt.com/blog/post-{number}</link>"
            f"<guid>https://www.oakviewpt.com/blog/post-{number}</guid>"
            f"<pubDate>{format_datetime(start + timedelta(hours=number))}</pubDate>"
            f"<description><![CDATA[{html}]]></description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://www.oakviewpt.com/</link><description>bench</description>"
        + "".join(entries)
        + "</channel></rss>"
    ).encode()


def write_audience(folder: Path, channel_type: str, count: int) -> None:
    """``count`` consenting subscribers (valid, distinct addresses) for ``channel_type``."""
    consent = "2025-01-14T09:12:00-06:00"
    with (folder / f"{channel_type}.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        if channel_type == "sms":
            writer.writerow(["phone", "name", "consent_at", "consent_method", "consent_text", "status", "timezone"])
            for n in range(count):
                phone = f"+1{312 + n // 10000 * 461}555{n % 10000:04d}"  # 312, 773, 1234 ... area codes
                row = [phone, f"Patient {n}", consent, "web form", "Reply STOP to opt out.", "subscribed"]
                writer.writerow([*row, "America/Chicago"])
        else:
            writer.writerow(["email", "name", "consent_at", "consent_method", "consent_text", "status"])
            for n in range(count):
                writer.writerow([f"reader{n}@example.com", f"Reader {n}", consent, "web form", "Yes.", "subscribed"])


def observance(key: str, title: str, text: str) -> Any:
    """A one-sentence observance item (a ``ContentItem``) published the day before ``OPEN``."""
    from carecast.model import ContentItem, content_hash

    return ContentItem(
        id=key,
        source="observances",
        kind="observance",
        title=title,
        url=None,
        summary_html=f"<p>{text}</p>",
        summary_text=text,
        published=OPEN - timedelta(days=1),
        content_hash=content_hash(text),
    )


def baseline_db(path: Path) -> sqlite3.Connection:
    """The baselines' own SQLite ledger: items, and one row per send (claimed, then sent or failed)."""
    db = sqlite3.connect(path)
    db.execute("pragma journal_mode=wal")  # as the CareCast ledger: one fsync a commit
    db.execute("create table if not exists items (id text primary key, title text, link text, summary text, hash text)")
    db.execute("create table if not exists sends (address text primary key, state text, provider_id text)")
    return db


def chunks(values: list[str], size: int = CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def consenting(ledger_file: Path, channel_type: str) -> list[str]:
    """The subscribers a baseline may send to, read from the prepared CareCast ledger with plain SQL."""
    with sqlite3.connect(ledger_file) as db:
        return [
            address
            for (address,) in db.execute(
                "select address from subscribers where channel_type = ? and status = 'subscribed'"
                " and consent_at is not null order by address",
                (channel_type,),
            )
        ]


def long_items(count: int, image: str | None = None, sentences: int = 14) -> list[Any]:
    """``count`` long blog posts of ``sentences`` sentences (``image``: the picture each carries)."""
    from carecast.model import ContentItem, content_hash

    now = datetime.now(UTC)
    items = []
    for n in range(count):
        text = long_text(n, sentences)
        items.append(
            ContentItem(
                id=f"bench:{n}",
                source="blog",
                kind="post",
                title=f"Desk stretches, part {n}",
                url=f"https://www.oakviewpt.com/blog/stretches-{n}",
                summary_html=f"<p>{text}</p>",
                summary_text=text,
                published=now - timedelta(minutes=n),
                content_hash=content_hash(text),
                image_url=image,
                image_alt="A patient stretching at a desk" if image else None,
            )
        )
    return items
