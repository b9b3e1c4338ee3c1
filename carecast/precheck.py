"""``carecast run``'s look before Prefect loads: is there anything for the run to do?

The run's first step is done for real (the audience files brought in, every source polled: both idempotent, and
cheap when nothing changed: a hash, a conditional GET, the entries' fingerprints); then the ledger is asked, without
rendering or storing anything, whether a chosen channel has anything to adapt, expire or publish, through the same
functions the run's steps use. A run with nothing to do ends there: no Prefect server started, no flow run recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from carecast.config import Settings
from carecast.drafting import still_to_adapt
from carecast.ledger import Ledger
from carecast.outcomes import Outcome
from carecast.pipeline import SourceReport, channel_names, ingest, late_drafts, sync_audience


@dataclass(frozen=True)
class Look:
    """What the look found: each source's report, why the run has work (empty: none), the drafts waiting for
    approval a run reports again, and those not going out (refused by the rules, held for possible PHI) with why."""

    sources: list[SourceReport]
    work: list[str] = field(default_factory=list)
    waiting: list[Outcome] = field(default_factory=list)
    kept_back: list[Outcome] = field(default_factory=list)

    def ingested(self) -> dict[str, dict[str, Any]]:
        """Each source's report, as plain data: the flow's ``ingested`` parameter (the flow polls no source again)."""
        return {report.source: asdict(report) for report in self.sources}


def look(settings: Settings, ledger: Ledger, channels: Sequence[str] | None, now: datetime | None = None) -> Look:
    """Poll the audience files and every source, then find what the run would do on each of ``channels`` (default:
    every enabled channel) at ``now`` (default: the clock).

    Raises ConfigError for an invalid audience file or a channel the config does not have, as the run would.
    """
    work = [
        f"audience {kind}: {added} added, {updated} updated"
        for kind, (added, updated) in sync_audience(settings, ledger).items()
        if added or updated
    ]
    # Polled together, as the flow's ingest tasks are: a run waits for its slowest feed, not for their sum.
    with ThreadPoolExecutor(max_workers=max(min(len(settings.sources), 8), 1)) as pool:
        reports = list(pool.map(lambda source: ingest(settings, ledger, source, now=now), settings.sources))
    # A source that failed needs the flow: its run ends Failed, which tells the practice (notify.webhook, else an
    # email or the outbox: carecast_flows.notify); drafts refused or held earlier were told then and need nothing.
    work += [
        f"source {report.source}: {len(report.new)} new, {len(report.edited)} edited"
        + (", failed" if report.error or report.failures else "")
        for report in reports
        if report.new or report.edited or report.error or report.failures
    ]
    waiting: list[Outcome] = []
    kept_back: list[Outcome] = []
    for name in channel_names(settings, channels):
        to_render, again, kept = still_to_adapt(settings, ledger, name, now)
        waiting += again
        kept_back += kept
        work += _channel_work(settings, ledger, name, now, len(to_render))
    return Look(reports, work, waiting, kept_back)


def _channel_work(settings: Settings, ledger: Ledger, name: str, now: datetime | None, to_render: int) -> list[str]:
    """Why the channel's adapt, expire or publish has something to do (as :func:`carecast.pipeline.adapt`,
    :func:`~carecast.pipeline.expire_late_drafts` and :func:`~carecast.pipeline.publish` would find it)."""
    late = late_drafts(settings, ledger, name, now)
    due = ledger.due(name, now)
    stale = ledger.stale_claims(name, timedelta(seconds=settings.ledger.claim_timeout))
    said = [
        (to_render, "item(s) to draft"),
        (len(late), "draft(s) to expire"),
        (len(due), "draft(s) due"),
        (len(stale), "publication(s) cut off to resume"),
    ]
    return [f"{name}: {count} {what}" for count, what in said if count]
