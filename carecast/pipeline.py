"""The three steps of a run — ingest a source, adapt items for a channel, publish a channel's due drafts.

Framework-free: the Prefect flows call these with names, and so can a script or a test. Each step reports what
happened to every item instead of raising, so one bad source, draft or provider never stops the rest of a run;
the ledger records each outcome as it happens.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from carecast.audience import ADDRESS_COLUMN, load_audience
from carecast.channel import make_channel
from carecast.config import Settings
from carecast.drafting import adapt, describe_measures
from carecast.errors import (
    ConfigError,
    LedgerError,
    RenderError,
    SourceError,
)
from carecast.ledger import Ledger, StoredDraft
from carecast.model import Draft, now_utc
from carecast.outcomes import Outcome, OutcomeState, care_findings, held_reason, phi_check, title_of
from carecast.phi import PhiCheck, fingerprint
from carecast.phi_holds import EDITED, HELD_OUT, phi_findings
from carecast.publishing import publish
from carecast.schedule import is_expired, next_slots
from carecast.sources import Validators, read_source

# adapt and publish live in their own modules; the run's steps are called from here all the same.
__all__ = [
    "Outcome",
    "OutcomeState",
    "PhiCheck",
    "SourceReport",
    "adapt",
    "channel_names",
    "decide",
    "describe_measures",
    "draft_slot",
    "editable_text",
    "expire_late_drafts",
    "ingest",
    "late_drafts",
    "make_channel",
    "phi_findings",
    "publish",
    "sync_audience",
    "title_of",
    "waiting",
]


@dataclass(frozen=True)
class SourceReport:
    """What ingesting one source did; ``error`` is set when the source failed (the run goes on)."""

    source: str
    new: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    unchanged: int = 0
    not_modified: bool = False
    warnings: list[str] = field(default_factory=list)
    #: Items that could not be read, each with its reason; the source's other items were ingested.
    failures: list[str] = field(default_factory=list)
    error: str | None = None


def sync_audience(settings: Settings, ledger: Ledger) -> dict[str, tuple[int, int]]:
    """Bring the practice's subscriber files (``audience/<type>.csv``) into the ledger: (added, updated) per type.

    A file is read only when it changed since it was last brought in (its SHA-256 is kept in the ledger beside the
    feeds' validators): an unchanged list of 50,000 costs a hash, not a validation. Opt-outs and bounces the ledger
    recorded stay in force whatever a file says. Raises ConfigError for an invalid file: a list with a wrong row
    must be fixed before anyone is texted or emailed from it.
    """
    folder = settings.path(settings.audience)
    changes = {}
    for channel_type in sorted({config.type for config in settings.channels.values()} & set(ADDRESS_COLUMN)):
        file = folder / f"{channel_type}.csv"
        if not file.is_file():
            continue
        key = f"audience:{channel_type}"
        try:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
        except OSError:
            digest = None  # load_audience reports the unreadable file
        if digest is not None and ledger.validators(key) == (digest, None):
            changes[channel_type] = (0, 0)
            continue
        changes[channel_type] = ledger.save_subscribers(channel_type, load_audience(folder, channel_type))
        if digest is not None:
            ledger.save_validators(key, digest, None)  # after the import: a crash in between reads it again
    return changes


def ingest(settings: Settings, ledger: Ledger, source: str, *, now: datetime | None = None) -> SourceReport:
    """Read one source and store what is new or edited; a failing source is reported, never raised. ``now``
    (default: the clock) decides the practice's date, which observances and dated posts are read against.

    A feed's entries the ledger holds as they are (by their fingerprint) are only counted as unchanged: a poll
    costs what is new or edited, not the whole feed.
    """
    kept = ledger.validators(source)
    validators = Validators(etag=kept[0], last_modified=kept[1]) if kept else None
    try:
        result = read_source(
            source,
            settings.sources[source],
            settings,
            validators=validators,
            known=ledger.known_entries,
            today=None if now is None else now.astimezone(settings.practice.zone).date(),
        )
    except SourceError as exc:
        return SourceReport(source, error=exc.reason)
    if result.not_modified:
        if result.validators is not None and result.validators != validators:
            # A 304 may carry a new ETag; the next poll must send it.
            ledger.save_validators(source, result.validators.etag, result.validators.last_modified)
        return SourceReport(source, not_modified=True, warnings=list(result.warnings))
    # The validators are kept with the items, in one transaction: a crash never leaves them without the items.
    fresh = result.validators
    changes = ledger.upsert_items(
        result.items, result.fingerprints, validators=(source, fresh.etag, fresh.last_modified) if fresh else None
    )
    return SourceReport(
        source,
        changes.new,
        changes.edited,
        changes.unchanged + result.unchanged,
        warnings=list(result.warnings),
        failures=list(result.failures),
    )


def channel_names(settings: Settings, only: Sequence[str] | None = None) -> list[str]:
    """Enabled channels, or those of ``only``.

    Raises ConfigError naming ``channels.<name>`` for a channel the config does not have (a typo in a Run form).
    """
    if only:
        unknown = [name for name in only if name not in settings.channels]
        if unknown:
            known = ", ".join(settings.channels)
            raise ConfigError(
                settings.file, [(f"channels.{name}", f"a configured channel ({known})") for name in unknown]
            )
        return list(only)
    return [name for name, config in settings.channels.items() if config.enabled]


#: How far ahead a draft's slot is looked for: past the longest gap between two monthly slots.
_SLOT_HORIZON = timedelta(days=62)


def draft_slot(settings: Settings, instance: str, created: datetime) -> datetime | None:
    """The slot a draft created at ``created`` goes out at: the first whose late window had not closed by then.

    None when the channel has no schedule (every run publishes) or no slot within two months.
    """
    config = settings.channels[instance]
    if not config.schedule:
        return None
    after = created - config.late.send_within
    upcoming = next_slots(config.schedule, settings.practice.zone, after, after + _SLOT_HORIZON)
    return upcoming[0] if upcoming else None


def waiting(settings: Settings, ledger: Ledger, instance: str) -> list[tuple[StoredDraft, datetime | None]]:
    """The channel's drafts waiting for approval or held for possible PHI, each with its slot (None: no schedule),
    oldest first."""
    pending = ledger.drafts(instance, states=["pending", "held"])
    return [(stored, draft_slot(settings, instance, stored.created_at)) for stored in pending]


def late_drafts(
    settings: Settings, ledger: Ledger, instance: str, now: datetime | None = None
) -> list[tuple[StoredDraft, datetime]]:
    """The channel's drafts still unapproved after their slot's late window, each with its slot: those
    :func:`expire_late_drafts` expires at ``now`` (default: the clock)."""
    moment = now or now_utc()
    policy = settings.channels[instance].late
    return [
        (stored, slot)
        for stored, slot in waiting(settings, ledger, instance)
        # An item held out of a digest waits for staff: released, it joins the next issue.
        if slot is not None and is_expired(slot, moment, policy) and not stored.draft.measures.get(HELD_OUT)
    ]


def expire_late_drafts(settings: Settings, ledger: Ledger, instance: str, now: datetime | None = None) -> list[Outcome]:
    """Expire the channel's drafts still unapproved after their slot's late window (``late:``): never sent late."""
    policy = settings.channels[instance].late
    outcomes = []
    for stored, slot in late_drafts(settings, ledger, instance, now):
        held = "held for possible PHI and never released: " if stored.state == "held" else ""
        reason = (
            f"{held}not approved by {slot.astimezone(settings.practice.zone):%a %d %b %H:%M} + {policy.send_within}"
        )
        ledger.set_draft_state(stored.id, "expired", reason)
        outcomes.append(
            Outcome(instance, stored.draft.item_ids, "expired", reason, title_of(ledger.items(stored.draft.item_ids)))
        )
    return outcomes


#: Separates a thread's posts in editable text, so staff can split or join them.
_PART_BREAK = re.compile(r"^---$", re.MULTILINE)


def editable_text(draft: Draft) -> str:
    """The draft's text as staff edit it: its parts separated by a line of three dashes."""
    return "\n---\n".join(part.strip() for part in draft.parts)


def decide(
    settings: Settings,
    ledger: Ledger,
    draft_id: int,
    *,
    approve: bool,
    text: str | None = None,
    reason: str = "",
    by: str = "staff",
) -> Outcome:
    """Approve (with ``text`` replacing the draft's, when given) or reject a pending or held draft.

    Approving a draft held for possible PHI releases it, which needs a ``reason`` (recorded with ``by``); an edited
    text is checked again, and approved without one when the edit removed what was found.

    Raises RenderError when the edited text breaks the channel's rules or the draft is an HTML email (edit its
    template or item instead), LedgerError when the draft is unknown or no longer waiting, when a held draft is
    approved without a reason, or when an approval comes after the draft's slot and late window: it is never sent
    late.
    """
    stored = ledger.draft(draft_id)
    if stored.state not in ("pending", "held"):
        raise LedgerError(f"draft {draft_id} is not waiting for approval")
    slot = draft_slot(settings, stored.channel, stored.created_at)
    if approve and slot is not None and now_utc() > slot + settings.channels[stored.channel].late.send_within:
        raise LedgerError(f"draft {draft_id} missed its slot ({slot.isoformat()}); it is never sent late")
    items = ledger.items(stored.draft.item_ids)
    title = title_of(items)
    if not approve:
        ledger.set_draft_state(draft_id, "rejected", reason or "rejected by staff")
        return Outcome(stored.channel, stored.draft.item_ids, "rejected", reason or "rejected by staff", title)
    if text is None or text.strip() == editable_text(stored.draft):
        if stored.state == "held":
            ledger.release(draft_id, reason, by)
            detail = f"released by {by}: {reason}"
            return Outcome(stored.channel, stored.draft.item_ids, "approved", detail, title, stored.draft)
        ledger.set_draft_state(draft_id, "approved", reason or None)
        return Outcome(stored.channel, stored.draft.item_ids, "approved", "approved as drafted", title, stored.draft)
    if stored.draft.html is not None:
        raise RenderError(
            stored.channel, "an email's text cannot be edited here: edit the item or template", stored.draft.item_ids
        )
    parts = tuple(part.strip() for part in _PART_BREAK.split(text.strip()))
    edited = make_channel(settings, stored.channel).enforce(replace(stored.draft, parts=parts))
    edited = replace(edited, measures=edited.measures | {EDITED: True})
    ledger.save_draft(edited, stored.account, "approved", reason="edited by staff")
    check = phi_check(settings, ledger)
    findings = phi_findings(check, edited, items) + care_findings(check, settings, stored.channel, edited)
    if findings and ledger.hold(draft_id, fingerprint(edited), findings):
        if not reason.strip():
            return Outcome(stored.channel, edited.item_ids, "held", held_reason(draft_id, findings), title, edited)
        ledger.release(draft_id, reason, by)
        return Outcome(
            stored.channel, edited.item_ids, "approved", f"edited, released by {by}: {reason}", title, edited
        )
    return Outcome(stored.channel, edited.item_ids, "approved", "approved with edits", title, edited)
