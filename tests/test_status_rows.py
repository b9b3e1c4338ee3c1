"""``Ledger.status_pages`` (what ``carecast status`` prints, read in one query a page on the driver's cursor) says
what the records of ``Ledger.stream_publications`` say, on both dialects, across pages, with every filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from carecast.ledger import Ledger
from carecast.ledger.publications import PublicationRecord
from carecast.model import Draft, Receipt
from tests.factories import make_item


def shown(record: PublicationRecord) -> tuple[int, str, str, str, str, str]:
    data = record.to_json()
    where = str(data["receipt"]["location"]) if data["receipt"] else str(data["error"] or "")
    moment = (record.finished_at or record.claimed_at).astimezone(UTC).isoformat()[:16]
    return record.id, record.channel, record.state, moment, ", ".join(record.item_ids), where


def test_status_pages_say_what_the_records_say(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    try:
        ledger.upsert_items([make_item(f"{kind}-{n}") for n in range(7) for kind in ("post", "a")])
        for n in range(7):
            # Some publications carry two items (a digest), in an order their ids do not sort in.
            items = (f"post-{n}", f"a-{n}") if n % 3 == 0 else (f"post-{n}",)
            channel = "newsletter" if len(items) == 2 else "x"
            publication = ledger.claim(ledger.save_draft(Draft(channel, items, (f"hi {n}",)), "default", "approved"))
            if n % 2:
                ledger.record_failed(publication, f"refused {n}", transient=False)
            elif n != 4:  # the fifth stays claimed: no finish time, its claim's moment shows
                ledger.record_sent(publication, Receipt(location=f"https://x.com/{n}", sent_at=datetime.now(UTC)))
        filters: list[dict[str, Any]] = [
            {},
            {"channel": "x"},
            {"state": "failed"},
            {"limit": 3},
            {"limit": 2, "state": "sent"},
            {"since": datetime.now(UTC) - timedelta(hours=1)},
            {"since": datetime.now(UTC) + timedelta(hours=1)},
            {"channel": "sms"},
        ]
        for chosen in filters:
            for page in (1, 2, 1000):
                expected = [shown(record) for record in ledger.stream_publications(**chosen, page=page)]
                pages = list(ledger.status_pages(**chosen, page=page))
                assert [row for rows in pages for row in rows] == expected, (chosen, page)
                # Whole pages of publications (a digest's rows joined in one), the last one shorter.
                assert [len(rows) for rows in pages[:-1]] == [page] * (len(pages) - 1), (chosen, page)
                assert not pages or 0 < len(pages[-1]) <= page, (chosen, page)
        assert [len(rows) for rows in ledger.status_pages()] == [7]
    finally:
        ledger.close()
