"""The three steps of a run — ingest a source, adapt items for a channel, publish a channel's due drafts.

Framework-free: the Prefect flows call these with names, and so can a script or a test. Each step reports what
happened to every item instead of raising, so one bad source, draft or provider never stops the rest of a run;
the ledger records each outcome as it happens.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Literal

from carecast.audience import ADDRESS_COLUMN, load_audience
from carecast.audiences import routed_to
from carecast.channel import CREDENTIAL_TO_FIX, Channel, Outbox, PublishContext, make_channel, unpaced
from carecast.config import Settings
from carecast.errors import (
    AlreadyClaimed,
    ConfigError,
    CredentialError,
    LedgerError,
    PublishError,
    RenderError,
    SourceError,
)
from carecast.ledger import IN_FLIGHT, RENDERED_FROM, DraftState, Ledger, StoredDraft, keep_claim_alive
from carecast.ledger.holds import DraftSave
from carecast.links import shortener
from carecast.model import ContentItem, Draft, now_utc
from carecast.phi import Finding, PhiCheck, fingerprint
from carecast.phi_holds import EDITED, HELD_OUT, DigestScreen, already_held, phi_findings, screen_digest, settle_digest
from carecast.recipients import chosen_by_care
from carecast.schedule import is_expired, next_slots
from carecast.sources import Validators, read_source

OutcomeState = Literal[
    "published",
    "failed",
    "retry",
    "rejected",
    "skipped",
    "preview",
    "waiting",
    "approved",
    "expired",
    "unknown",
    "held",
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


@dataclass(frozen=True)
class Outcome:
    """What happened to one draft on one channel: the row of the run's summary table."""

    channel: str
    item_ids: tuple[str, ...]
    state: OutcomeState
    detail: str
    title: str = ""
    draft: Draft | None = None


def phi_check(settings: Settings, ledger: Ledger) -> PhiCheck:
    """The PHI check for the practice, knowing every patient its authorizations name."""
    return PhiCheck.for_practice(settings, ledger.known_patients())


def care_findings(check: PhiCheck, settings: Settings, instance: str, draft: Draft) -> list[Finding]:
    """What a draft of a channel addressing people chosen by their care may not name at all (any condition or
    treatment, :meth:`PhiCheck.any_health`); nothing for any other channel."""
    return check.any_health(draft) if chosen_by_care(settings, instance) else []


def held_reason(draft_id: int | None, findings: Sequence[Finding]) -> str:
    """Why a draft is held, and what staff can do about it."""
    how = f"; fix its text or `carecast release {draft_id} --reason ...`" if draft_id is not None else ""
    return "held for possible PHI: " + "; ".join(finding.summary for finding in findings) + how


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


def adapt(
    settings: Settings,
    ledger: Ledger,
    instance: str,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    items: Sequence[str] | None = None,
) -> list[Outcome]:
    """Render drafts of ``instance`` for items not yet published on it (only ``items``, when given), and store them
    (not in a dry run).

    A draft that breaks a rule is stored as refused with its reason and never published. It stays refused, never
    rendered again, until its items, the channel's config or its templates change (:func:`render_fingerprint`):
    then an edit that mends it lets it through, and a run with nothing new costs nothing for old refusals. A draft
    with possible PHI no authorization covers is held (:mod:`carecast.phi`) until staff fix its text or release it
    with a reason.
    """
    channel = make_channel(settings, instance)
    channel.shortener = shortener(settings, ledger)  # the short links a dry run shows are those it would send
    config = channel.config
    moment = now or now_utc()
    candidates = ledger.unpublished(
        instance, config.account, config.sources, since=moment - timedelta(days=config.max_age_days)
    )
    if items is not None:
        candidates = [item for item in candidates if item.id in items]
    kinds = channel.kinds if config.kinds is None else frozenset(config.kinds)
    # Items for other audiences are not this channel's, as items of other sources are not.
    candidates = [
        item
        for item in candidates
        if routed_to(item.audiences, item.tags, settings.audiences, config.type, config.audience)
        # The practice's own `kinds` decide; without them, the kinds the channel takes (texts: no blog posts).
        and (kinds is None or item.kind in kinds)
    ]
    outcomes: list[Outcome] = []
    told = {} if dry_run else ledger.refusals(instance, config.account)
    unchanged = {} if dry_run else ledger.refusal_fingerprints(instance, config.account)
    templates = templates_fingerprint(settings, channel)
    check = phi_check(settings, ledger)
    # Every draft of the run is saved in one transaction at the end (one commit, not one or two per draft); the
    # outcomes that depend on what was stored (held, waiting) are filled in then, in their places.
    saves: list[DraftSave] = []
    stored: list[tuple[int, int, Draft, list[ContentItem], list[Finding], bool]] = []

    def reject(items: Sequence[ContentItem], reason: str, rendered_from: str | None = None) -> None:
        measures = {} if rendered_from is None else {RENDERED_FROM: rendered_from}
        refused = Draft(channel=instance, item_ids=tuple(item.id for item in items), parts=(), measures=measures)
        told_before = told.get(refused.key) == reason  # refused for the same reason before: staff were told once
        if not dry_run and not (told_before and rendered_from is None):
            saves.append(DraftSave(refused, "refused", reason))  # keeps what it was rendered from
        if not told_before:
            outcomes.append(Outcome(instance, refused.item_ids, "rejected", reason, title_of(items)))

    if channel.digest:
        # One refused item must not sink the whole digest: refuse it alone, with its reason.
        admitted = []
        for item in candidates:
            try:
                channel.admit(item)
            except RenderError as exc:
                reject([item], exc.reason)
                continue
            admitted.append(item)
        # An item with possible PHI drops out of the issue, held alone; the issue goes out on time with the rest.
        screen = screen_digest(channel, ledger, check, admitted, account=config.account, dry_run=dry_run)
        for held in screen.held:
            if held.new:
                detail = held_reason(held.draft_id, held.findings) + "; left out of this issue"
                outcomes.append(Outcome(instance, held.draft.item_ids, "held", detail, held.item.title, held.draft))
        admitted = screen.clear
        batches = [admitted[: config.max_items_per_run]] if admitted else []
        backlog = admitted[config.max_items_per_run :]
    else:
        screen = DigestScreen()
        batches = [[item] for item in candidates]
        backlog = []
    state: DraftState = "approved" if config.approval == "auto" else "pending"
    kept: list[str] = []
    held_before = {} if dry_run else {stored.draft.key: stored.draft for stored in ledger.drafts(instance, ["held"])}
    for number, batch in enumerate(batches):
        if len(kept) >= config.max_items_per_run:
            backlog = [item for rest in batches[number:] for item in rest]
            break
        rendered_from = render_fingerprint(channel, batch, templates)
        if unchanged.get(Draft(instance, tuple(item.id for item in batch), ()).key) == rendered_from:
            continue  # refused before, and nothing it was rendered from has changed: staff were told once
        try:
            draft = channel.render(batch)
        except RenderError as exc:
            reject(batch, exc.reason, rendered_from)
            continue
        kept.append(draft.key)
        findings = phi_findings(check, draft, batch) + care_findings(check, settings, instance, draft)
        if dry_run:
            shown: tuple[OutcomeState, str] = (
                ("held", held_reason(None, findings)) if findings else ("preview", describe_measures(draft))
            )
            outcomes.append(Outcome(instance, draft.item_ids, *shown, title_of(batch), draft))
            continue
        stored.append((len(saves), len(outcomes), draft, batch, findings, already_held(ledger, draft, held_before)))
        saves.append(DraftSave(draft, state, hold=(fingerprint(draft), findings) if findings else None))
    saved = ledger.save_drafts(config.account, saves) if saves else []
    for save, place, draft, batch, findings, held_earlier in reversed(stored):  # from the end: places stay put
        result = saved[save]
        # An issue whose findings are all in items staff released goes out with their release.
        if result.held and settle_digest(ledger, result.id, draft, findings, screen, batch):
            if held_earlier:  # staff are told of a hold once, and again when its slot comes (publish)
                continue
            outcome = Outcome(
                instance, draft.item_ids, "held", held_reason(result.id, findings), title_of(batch), draft
            )
        # Staff may have decided already (rejected, expired): only a draft still pending waits for them.
        elif state == "pending" and result.state == "pending":
            outcome = Outcome(instance, draft.item_ids, "waiting", "waiting for approval", title_of(batch), draft)
        else:
            continue
        outcomes.insert(place, outcome)
    if backlog:
        # More new items than the channel sends per run: the newest go out, the older ones never go out late.
        reason = f"older than the {config.max_items_per_run} newest new items of this run (max_items_per_run)"
        if not dry_run:
            skipped = [item.id for item in backlog]
            ledger.skip_items(instance, config.account, skipped, reason)
            # Their drafts from earlier runs (approved, waiting for a slot) go too: skipped means never sent.
            ledger.forget_drafts(instance, config.account, [Draft(instance, (item,), ()).key for item in skipped])
        outcomes.extend(Outcome(instance, (item.id,), "skipped", reason, item.title) for item in backlog)
    if not dry_run and channel.digest:
        ledger.forget_pending(instance, config.account, keep=kept + screen.kept)
        # Released items went into this issue: their drafts of their own go (unless the issue has their key).
        ledger.forget_drafts(instance, config.account, [key for key in screen.released_keys if key not in kept])
    return outcomes


def templates_fingerprint(settings: Settings, channel: Channel) -> str:
    """A hash of every file of the channel's template folders (names and bytes): changes when a template does."""
    digest = hashlib.sha256()
    own = settings.path(settings.templates)
    for folder in (
        [own / channel.instance, own / channel.name] if channel.instance != channel.name else [own / channel.name]
    ):
        for file in sorted(path for path in folder.rglob("*") if path.is_file()):
            digest.update(str(file.relative_to(folder)).encode() + b"\x00" + file.read_bytes() + b"\x00")
    return digest.hexdigest()


def render_fingerprint(channel: Channel, items: Sequence[ContentItem], templates: str) -> str:
    """What a draft of ``items`` is rendered from: the items (all their fields), the channel's config, the practice
    (voice, name) and its templates (``templates``: :func:`templates_fingerprint`). Equal fingerprints render alike.
    """
    source = {
        "items": [item.to_json() for item in items],
        "channel": channel.config.model_dump(mode="json"),
        "practice": channel.practice.model_dump(mode="json"),
        "templates": templates,
    }
    return hashlib.sha256(json.dumps(source, sort_keys=True, default=str).encode()).hexdigest()


def title_of(items: Sequence[ContentItem]) -> str:
    """How a run names a draft: its item's title, or the count and first title of a digest."""
    return items[0].title if len(items) == 1 else f"{len(items)} items: {items[0].title}, ..."


def describe_measures(draft: Draft) -> str:
    """What the channel measured, in words: each post's weighted length, SMS segments or characters; the subject;
    what the channel left out."""
    described = []
    for number, part in enumerate(draft.measures.get("parts", []), start=1):
        words = []
        if "weighted_length" in part:
            words.append(f"weighted length {part['weighted_length']}")
        if "segments" in part:
            words.append(f"{part['segments']} {part['encoding']} segment(s)")
        if "characters" in part:
            words.append(f"{part['characters']} characters")
        if words:
            described.append(f"part {number}: {', '.join(words)}")
    if draft.subject:
        described.append(f"subject: {draft.subject}")
    described += draft.measures.get("notes", [])  # what the channel left out, e.g. hashtags that did not fit
    return "; ".join(described) or f"{len(draft.parts)} part(s)"


def publish(
    settings: Settings,
    ledger: Ledger,
    instance: str,
    *,
    items: Sequence[str] | None = None,
    now: datetime | None = None,
    retries_only: bool = False,
    pace: Callable[[str], None] | None = None,
    stopping: threading.Event | None = None,
) -> list[Outcome]:
    """Resume the channel's publications whose sender died, then claim and send every due draft of ``instance``
    (only those with one of ``items``, when given; only earlier transient failures whose wait is over, with
    ``retries_only``), recording each outcome before the next; ``now`` (default: the clock at each draft) is the
    moment channels send at, e.g. for SMS quiet hours. ``pace(limit_name)``, when given, is called before each
    provider request of a channel with a rate limit (:meth:`Channel.rate_limit`): it waits for a slot of that
    limit, and raises when it cannot. ``stopping``, once set, ends the run after the publication in hand.

    The claim happens before sending, so a draft another run or worker claimed is skipped, never sent twice. Each
    item is checked again just before its claim (a patient's authorization may have expired since the draft), and
    so is the draft's text for PHI (an approval may have edited it): a finding holds it unless staff released it. A
    claim untouched for ``ledger.claim_timeout`` seconds was left by a run that died: it is resumed here, its
    recipients or parts never claimed are sent, and the one in flight is reported ``unknown`` for a person to
    settle (``carecast resolve``). Once ``stopping`` is set (a shutdown), the send in hand finishes its recipient or
    part and leaves the rest for the next run, and nothing more is claimed.
    """
    channel = make_channel(settings, instance)
    check = phi_check(settings, ledger)
    stop = stopping or threading.Event()
    outbox = Outbox(settings.path(settings.outbox).resolve())
    limit = channel.rate_limit()
    paced = channel.paced(unpaced if pace is None or limit is None else partial(pace, limit.name))
    sender = _Sender(
        channel, ledger, outbox, settings.ledger.claim_timeout, stop, paced, settings.ledger.delivery_chunk
    )
    outcomes = []
    for publication_id in ledger.resume_stale(instance, timedelta(seconds=settings.ledger.claim_timeout)):
        stored = ledger.publication_draft(publication_id)
        outcomes.append(sender.send(stored.draft, publication_id, now))
    for stored in ledger.due(instance, now, retries_only=retries_only):
        if stop.is_set():
            break
        draft = stored.draft
        if (items is not None and not set(draft.item_ids) & set(items)) or draft.measures.get(HELD_OUT):
            continue  # an item held out of a digest is never sent alone: once released, it joins the next issue
        drafted = ledger.items(draft.item_ids)
        title = title_of(drafted)
        try:
            for item in drafted:
                channel.admit(item)
        except RenderError as exc:
            ledger.set_draft_state(stored.id, "refused", exc.reason)
            outcomes.append(Outcome(instance, draft.item_ids, "rejected", exc.reason, title))
            continue
        findings = phi_findings(check, draft, drafted) + care_findings(check, settings, instance, draft)
        if findings and ledger.hold(stored.id, fingerprint(draft), findings):
            outcomes.append(Outcome(instance, draft.item_ids, "held", held_reason(stored.id, findings), title, draft))
            continue
        try:
            publication_id = ledger.claim(stored.id)
        except AlreadyClaimed:
            continue
        outcomes.append(sender.send(draft, publication_id, now))
    if channel.digest and any(outcome.state == "published" for outcome in outcomes):
        outcomes += still_held_out(ledger, instance)
    return outcomes


def still_held_out(ledger: Ledger, instance: str) -> list[Outcome]:
    """The items held out of a digest issue that just went out: staff are told again, at the issue's slot."""
    return [
        Outcome(
            instance,
            stored.draft.item_ids,
            "held",
            f"still held for possible PHI, left out of the issue sent now ({stored.reason}); release draft "
            f"{stored.id} to send it in the next issue",
            title_of(ledger.items(stored.draft.item_ids)),
            stored.draft,
        )
        for stored in ledger.drafts(instance, ["held"])
        if stored.draft.measures.get(HELD_OUT)
    ]


@dataclass(frozen=True)
class _Sender:
    """Sends one claimed publication of a channel and records how it ended."""

    channel: Channel
    ledger: Ledger
    outbox: Outbox
    claim_timeout: float
    stopping: threading.Event
    pace: Callable[[], None]
    delivery_chunk: int = 1

    def title(self, draft: Draft) -> str:
        return title_of(self.ledger.items(draft.item_ids))

    def send(self, draft: Draft, publication_id: int, now: datetime | None) -> Outcome:
        """Publish ``draft`` under its claim, kept alive meanwhile, and record the outcome.

        A publication with a recipient or part whose send is ``unknown`` (a run died with it in flight) ends
        ``unknown`` whatever else happened, so a person settles it; the rest of it was sent all the same.
        """
        instance, ledger = self.channel.instance, self.ledger
        receipt, failure = None, None
        context = PublishContext(
            publication_id,
            self.outbox,
            ledger,
            now or now_utc(),
            pace=self.pace,
            stopping=self.stopping,
            delivery_chunk=self.delivery_chunk,
        )
        with keep_claim_alive(ledger, publication_id, every=self.claim_timeout / 4):
            try:
                self.channel.before_publish(context)
                receipt = self.channel.publish(draft, context)
            except PublishError as exc:
                failure = exc
            except CredentialError as exc:
                # Nothing left: a credential that is not set or not accepted is mended by a person, then retried.
                failure = PublishError(instance, f"{CREDENTIAL_TO_FIX}: {exc}", transient=True)
        title = self.title(draft)
        unknown = ledger.unknown_deliveries([publication_id]).get(publication_id, [])
        if unknown:
            if failure is not None:
                done = failure.reason
            else:
                done = "; ".join((receipt.location, *receipt.notes)) if receipt else ""
            reason = (
                f"{len(unknown)} {'part' if unknown[0].is_part else 'recipient'}(s) unknown: "
                f"{unknown[0].error or IN_FLIGHT}; check, then "
                f"carecast resolve {publication_id} --sent|--resend|--drop" + (f" ({done})" if done else "")
            )
            ledger.record_unknown(publication_id, reason, receipt)
            return Outcome(instance, draft.item_ids, "unknown", reason, title)
        if failure is not None:
            retry_after = failure.retry_after
            # The wait counts from the moment the channel sent at (quiet hours open relative to it), not the clock.
            not_before = None if retry_after is None else context.now + timedelta(seconds=retry_after)
            ledger.record_failed(publication_id, failure.reason, transient=failure.transient, not_before=not_before)
            return Outcome(instance, draft.item_ids, "retry" if failure.transient else "failed", failure.reason, title)
        assert receipt is not None
        ledger.record_sent(publication_id, receipt)
        return Outcome(
            instance, draft.item_ids, "published", "; ".join((receipt.location, *receipt.notes)), title, draft
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


def expire_late_drafts(settings: Settings, ledger: Ledger, instance: str, now: datetime | None = None) -> list[Outcome]:
    """Expire the channel's drafts still unapproved after their slot's late window (``late:``): never sent late."""
    moment = now or now_utc()
    policy = settings.channels[instance].late
    outcomes = []
    for stored, slot in waiting(settings, ledger, instance):
        if slot is None or not is_expired(slot, moment, policy) or stored.draft.measures.get(HELD_OUT):
            continue  # an item held out of a digest waits for staff: released, it joins the next issue
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
