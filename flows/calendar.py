"""The content calendar staff read: one column per day of the next 14 days, each slot with what goes out there,
its channel and state (auto, approved, waiting, held, refused), and a link to its preview.

Refreshed (artifact ``<practice>-calendar``) by every ingest, publish and review run, and by ``carecast serve`` as
it starts, so it is there before the first run. Where a draft goes: an approved one at its channel's next slot (the
next publish run sends every approved draft); a waiting or held one at the slot it was drafted for (it expires if
not decided by then); a draft refused in the last 14 days at the next slot, so staff see what will not go out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from carecast import pipeline as core
from carecast.config import Settings
from carecast.ledger import Ledger
from carecast.model import now_utc
from carecast.practice import open_practice
from carecast.review import REFUSED_WITHIN
from carecast.schedule import next_slots
from carecast_flows import artifacts

DAYS = 14
#: A title longer than this is cut in a calendar cell: fourteen columns share the page.
TITLE_WIDTH = 48
#: The states of a draft staff decide on: the ones with a preview (made by review and publish runs).
DECIDED_ON = ("waiting", "held")


@dataclass(frozen=True)
class Entry:
    """One draft on the calendar: when (UTC; None: due at the next run), where, what, and its state."""

    when: datetime | None
    channel: str
    draft_id: int
    title: str
    state: str


def entries(settings: Settings, ledger: Ledger, start: datetime | None = None) -> list[Entry]:
    """Every draft that goes out, waits, is held or was refused, placed at its slot within :data:`DAYS` of
    ``start`` (or due now)."""
    moment = start or now_utc()
    until = moment + timedelta(days=DAYS)
    zone = settings.practice.zone
    found = []
    for name in core.channel_names(settings):
        config = settings.channels[name]
        upcoming = next_slots(config.schedule, zone, moment, until) if config.schedule else []
        following = upcoming[0] if upcoming else None

        def title(stored_ids: tuple[str, ...]) -> str:
            return core.title_of(ledger.items(stored_ids))

        approved = "auto" if config.approval == "auto" else "approved"
        for stored in ledger.due(name, moment):
            found.append(Entry(following, name, stored.id, title(stored.draft.item_ids), approved))
        for stored, slot in core.waiting(settings, ledger, name):
            when = None if slot is None or slot <= moment else slot
            state = "held" if stored.state == "held" else "waiting"
            found.append(Entry(when, name, stored.id, title(stored.draft.item_ids), state))
        for stored in ledger.drafts(name, states=["refused"]):
            if stored.created_at >= moment - REFUSED_WITHIN:
                found.append(Entry(following, name, stored.id, title(stored.draft.item_ids), "refused"))
    return [entry for entry in found if entry.when is None or entry.when <= until]


def _cell(settings: Settings, day_entries: list[Entry], previews: Mapping[int, str]) -> str:
    zone = settings.practice.zone
    lines = []
    for entry in sorted(day_entries, key=lambda e: (e.when or datetime.min.replace(tzinfo=zone), e.channel)):
        at = "due now" if entry.when is None else f"{entry.when.astimezone(zone):%H:%M}"
        title = entry.title.replace("|", "/")
        title = title if len(title) <= TITLE_WIDTH else title[: TITLE_WIDTH - 1] + "…"
        link = previews.get(entry.draft_id) if entry.state in DECIDED_ON else None
        preview = f" [preview]({link})" if link else ""
        lines.append(f"**{at}** {entry.channel}: {title} (*{entry.state}*){preview}")
    return "<br>".join(lines) or "·"


def calendar_markdown(
    settings: Settings, ledger: Ledger, start: datetime | None = None, previews: Mapping[int, str] | None = None
) -> str:
    """The calendar as markdown: the legend, one table column per day, then the next slots of each channel.
    ``previews``: the address of each draft's preview, linked from its cell (see :func:`publish_calendar`)."""
    moment = start or now_utc()
    zone = settings.practice.zone
    first = moment.astimezone(zone).date()
    days = [first + timedelta(days=n) for n in range(DAYS)]
    by_day: dict[object, list[Entry]] = defaultdict(list)
    for entry in entries(settings, ledger, moment):
        by_day[first if entry.when is None else entry.when.astimezone(zone).date()].append(entry)
    lines = [
        f"# {settings.practice.name}: the next {DAYS} days",
        "",
        "States: *auto* goes out on its own; *approved* was approved; *waiting* needs a decision before its slot "
        "(run the **review** deployment); *held* may name a patient's health: fix or release it; *refused* broke a "
        "rule and will not go out (the review run and `carecast drafts --state refused` say why).",
        "",
        "| " + " | ".join(f"{day:%a %d %b}" for day in days) + " |",
        "|" + "---|" * len(days),
        "| " + " | ".join(_cell(settings, by_day.get(day, []), previews or {}) for day in days) + " |",
        "",
        "**Slots:** "
        + "; ".join(
            f"{name}: {', '.join(f'{slot.astimezone(zone):%a %H:%M}' for slot in _slots(settings, name, moment))}"
            for name in core.channel_names(settings)
        ),
    ]
    return "\n".join(lines)


def _slots(settings: Settings, name: str, start: datetime) -> list[datetime]:
    config = settings.channels[name]
    zone = settings.practice.zone
    return next_slots(config.schedule, zone, start, start + timedelta(days=DAYS))[:4] if config.schedule else []


def publish_calendar(settings: Settings, ledger: Ledger) -> None:
    """Create the calendar artifact ``<practice>-calendar`` (in a flow or task run), each draft staff decide on
    linked to its latest preview. Raises PrefectHTTPStatusError when the Prefect API refuses the previews' query."""
    moment = now_utc()
    decided_on = {entry.draft_id for entry in entries(settings, ledger, moment) if entry.state in DECIDED_ON}
    create_markdown_artifact(
        calendar_markdown(settings, ledger, moment, artifacts.preview_links(settings, decided_on)),
        key=f"{artifacts.slug(settings)}-calendar",
        description=f"{settings.practice.name}: what goes out in the next {DAYS} days, day by day",
    )


@task(task_run_name="calendar", cache_policy=NO_CACHE)
def refresh_calendar(config_path: str) -> None:
    """Refresh the practice's calendar artifact."""
    with open_practice(config_path) as practice:
        publish_calendar(practice.settings, practice.ledger)


@flow(name="calendar", flow_run_name="calendar")
def calendar(practice: str) -> None:
    """Refresh the practice's calendar: ``carecast serve`` runs it as it starts, so the calendar is there before
    any other run (an artifact is made in a run: Prefect no longer takes one made outside).

    Args:
        practice: the practice's configuration file
    """
    refresh_calendar(practice)
