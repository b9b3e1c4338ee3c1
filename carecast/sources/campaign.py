"""A campaign source: the practice's own wording as one item a period (month, quarter or year).

The item of a period has an id of its own (``campaign:reactivation:2026-Q4``), so the ledger's never-twice keys do
the rest: a channel publishes it once, each recipient gets it once, and the next period's item reaches them again.
It is dated the first day of its period in the practice's zone.
"""

from __future__ import annotations

from datetime import date

from carecast.config import CampaignSource, Settings
from carecast.model import content_hash
from carecast.sources.result import SourceResult, written_item


def period_of(every: str, today: date) -> tuple[str, date]:
    """The name of the period ``today`` is in (``2026-Q4``, ``2026-12``, ``2026``) and its first day."""
    if every == "month":
        return f"{today:%Y-%m}", today.replace(day=1)
    if every == "year":
        return f"{today.year}", date(today.year, 1, 1)
    quarter = (today.month - 1) // 3
    return f"{today.year}-Q{quarter + 1}", date(today.year, quarter * 3 + 1, 1)


def read_campaign(name: str, config: CampaignSource, settings: Settings, *, today: date) -> SourceResult:
    """The campaign's item for the period ``today`` (the practice's local date) is in."""
    period, first_day = period_of(config.every, today)
    url = str(config.url) if config.url else None
    item = written_item(
        settings,
        title=config.title,
        url=url,
        text=config.text,
        first_day=first_day,
        id=f"campaign:{name}:{period}",
        source=name,
        kind="post",
        content_hash=content_hash(config.title, config.text, url or "", ",".join(config.audiences)),
        campaign=f"{config.campaign or name.replace('-', '_')}_{period.lower().replace('-', '_')}",
        audiences=tuple(config.audiences),
    )
    return SourceResult(items=[item])
