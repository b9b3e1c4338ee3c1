"""The adapt step of a run: render a channel's drafts of new items, refuse or hold those that break a rule."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from carecast.audiences import routed_to
from carecast.channel import Channel, make_channel
from carecast.config import Settings
from carecast.errors import (
    RenderError,
)
from carecast.ledger import RENDERED_FROM, DraftState, Ledger
from carecast.ledger.holds import DraftSave
from carecast.links import shortener
from carecast.model import ContentItem, Draft, now_utc
from carecast.outcomes import Outcome, OutcomeState, care_findings, held_reason, phi_check, title_of
from carecast.phi import Finding, PhiCheck, fingerprint
from carecast.phi_holds import (
    HELD_OUT,
    DigestScreen,
    already_held,
    item_findings,
    phi_findings,
    screen_digest,
    settle_digest,
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
    candidates = _candidates(settings, ledger, channel, now, items)
    run = _Drafting(settings, ledger, channel, dry_run)
    batches, backlog, screen = run.batches(candidates)
    state: DraftState = "approved" if config.approval == "auto" else "pending"
    kept, backlog = run.render(batches, backlog, state)
    run.report_saved(state, screen)
    if backlog:
        run.skip(backlog)
    if not dry_run and channel.digest:
        ledger.forget_pending(instance, config.account, keep=kept + screen.kept)
        # Released items went into this issue: their drafts of their own go (unless the issue has their key).
        ledger.forget_drafts(instance, config.account, [key for key in screen.released_keys if key not in kept])
    return run.outcomes


def _candidates(
    settings: Settings, ledger: Ledger, channel: Channel, now: datetime | None, items: Sequence[str] | None
) -> list[ContentItem]:
    """The items ``adapt`` drafts for ``channel``: new, recent, of its sources, audience and kinds."""
    config = channel.config
    moment = now or now_utc()
    candidates = ledger.unpublished(
        channel.instance, config.account, config.sources, since=moment - timedelta(days=config.max_age_days)
    )
    if items is not None:
        candidates = [item for item in candidates if item.id in items]
    kinds = channel.kinds if config.kinds is None else frozenset(config.kinds)
    # Items for other audiences are not this channel's, as items of other sources are not.
    return [
        item
        for item in candidates
        if routed_to(item.audiences, item.tags, settings.audiences, config.type, config.audience)
        # The practice's own `kinds` decide; without them, the kinds the channel takes (texts: no blog posts).
        and (kinds is None or item.kind in kinds)
    ]


def still_to_adapt(
    settings: Settings, ledger: Ledger, instance: str, now: datetime | None = None
) -> tuple[list[str], list[Outcome], list[Outcome]]:
    """What :func:`adapt` of ``instance`` would do, found without rendering or storing anything: the ids of the
    items it would render, the outcomes it would report again (drafts waiting for approval), and the drafts it
    would leave as they are, not going out: refused by the rules or held for possible PHI, each with its reason
    (staff were told when it happened; adapt says nothing of them again).

    A candidate item needs nothing when its draft was refused, waits for approval, or is held (and the PHI check
    still finds what held it), and was rendered from what it would be rendered from now (:func:`render_fingerprint`:
    the item, the channel's config, the practice and its templates); any other candidate is to render. A digest's
    candidates are sorted as adapt sorts them (refused alone, held out, in the issue), and need nothing when each
    refusal and hold is an earlier one and the issue is one stored as it would render now.

    Raises LedgerError when the ledger cannot be read.
    """
    channel = make_channel(settings, instance)
    candidates = _candidates(settings, ledger, channel, now, None)
    if not candidates:
        return [], [], []
    look = _Look(settings, ledger, channel)
    batches = look.issue(candidates) if channel.digest else [[item] for item in candidates]
    if batches is None:
        return [item.id for item in candidates], [], []
    for batch in batches:
        look.batch(batch)
    return look.to_render, look.waiting, look.kept_back


class _Look:
    """:func:`still_to_adapt` of one channel: what its adapt would find, batch by batch."""

    def __init__(self, settings: Settings, ledger: Ledger, channel: Channel) -> None:
        self.settings, self.ledger, self.channel = settings, ledger, channel
        instance, account = channel.instance, channel.config.account
        self.templates = templates_fingerprint(settings, channel)
        self.refused = ledger.refusal_fingerprints(instance, account)
        self.reasons = ledger.refusals(instance, account)
        self.stored = {stored.draft.key: stored for stored in ledger.drafts(instance, ["pending", "held"])}
        self.to_render: list[str] = []
        self.waiting: list[Outcome] = []
        self.kept_back: list[Outcome] = []

    @functools.cached_property
    def check(self) -> PhiCheck:
        return phi_check(self.settings, self.ledger)  # read only when a draft is held: the matcher loads slowly

    def batch(self, batch: list[ContentItem]) -> None:
        """Sort one draft's items: to render, waiting, or kept back (refused, still held)."""
        instance, ids, title = self.channel.instance, tuple(item.id for item in batch), title_of(batch)
        key, rendered_from = _key(instance, batch), render_fingerprint(self.channel, batch, self.templates)
        if self.refused.get(key) == rendered_from:
            self.kept_back.append(Outcome(instance, ids, "rejected", self.reasons.get(key) or "refused", title))
            return
        stored = self.stored.get(key)
        if stored is None or stored.draft.measures.get(RENDERED_FROM) != rendered_from:
            self.to_render += ids
            return
        if stored.state == "pending":
            self.waiting.append(Outcome(instance, ids, "waiting", "waiting for approval", title, stored.draft))
            return
        findings = phi_findings(self.check, stored.draft, batch) + care_findings(
            self.check, self.settings, instance, stored.draft
        )
        if not findings:  # what held it is covered now: adapt lets the same text through
            self.to_render += ids
            return
        self.kept_back.append(Outcome(instance, ids, "held", held_reason(stored.id, findings), title, stored.draft))

    def issue(self, candidates: list[ContentItem]) -> list[list[ContentItem]] | None:
        """A digest's issue as adapt would make it (no batch when no item is clear), each item refused or held out
        kept back; None when adapt has more to do than render it: a new refusal or hold, a released item, a
        backlog to skip."""
        instance, channel = self.channel.instance, self.channel
        admitted, refused = _admit_each(channel, candidates)
        for item, reason in refused:
            if self.reasons.get(_key(instance, [item])) != reason:
                return None
            self.kept_back.append(Outcome(instance, (item.id,), "rejected", reason, item.title))
        clear = []
        for item in admitted:
            findings = item_findings(self.check, instance, item, admitted)  # as screen_digest checks it
            if not findings:
                clear.append(item)
                continue
            alone = self.stored.get(_key(instance, [item]))
            if alone is None or alone.state != "held" or not alone.draft.measures.get(HELD_OUT):
                return None
            why = held_reason(alone.id, findings) + "; left out of the issue"
            self.kept_back.append(Outcome(instance, (item.id,), "held", why, item.title, alone.draft))
        if len(clear) > channel.config.max_items_per_run:
            return None
        return [clear] if clear else []


def _admit_each(channel: Channel, items: list[ContentItem]) -> tuple[list[ContentItem], list[tuple[ContentItem, str]]]:
    """The items a digest ``channel`` admits, and those it refuses alone, each with its reason."""
    admitted: list[ContentItem] = []
    refused: list[tuple[ContentItem, str]] = []
    for item in items:
        try:
            channel.admit(item)
        except RenderError as exc:
            refused.append((item, exc.reason))
            continue
        admitted.append(item)
    return admitted, refused


def _key(instance: str, batch: Sequence[ContentItem]) -> str:
    """The key of a draft of ``batch`` on ``instance``."""
    return Draft(instance, tuple(item.id for item in batch), ()).key


class _Drafting:
    """One ``adapt`` of a channel: its outcomes so far, and the drafts it saves at the end.

    Every draft of the run is saved in one transaction at the end (one commit, not one or two per draft); the
    outcomes that depend on what was stored (held, waiting) are filled in then, in their places.
    """

    def __init__(self, settings: Settings, ledger: Ledger, channel: Channel, dry_run: bool) -> None:
        self.settings, self.ledger, self.channel, self.dry_run = settings, ledger, channel, dry_run
        self.instance, self.config = channel.instance, channel.config
        self.outcomes: list[Outcome] = []
        self.told = {} if dry_run else ledger.refusals(self.instance, self.config.account)
        self.unchanged = {} if dry_run else ledger.refusal_fingerprints(self.instance, self.config.account)
        self.templates = templates_fingerprint(settings, channel)
        self.check = phi_check(settings, ledger)
        self.saves: list[DraftSave] = []
        self.stored: list[tuple[int, int, Draft, list[ContentItem], list[Finding], bool]] = []

    def reject(self, items: Sequence[ContentItem], reason: str, rendered_from: str | None = None) -> None:
        instance = self.instance
        measures = {} if rendered_from is None else {RENDERED_FROM: rendered_from}
        refused = Draft(channel=instance, item_ids=tuple(item.id for item in items), parts=(), measures=measures)
        told_before = self.told.get(refused.key) == reason  # refused for the same reason before: staff were told once
        if not self.dry_run and not (told_before and rendered_from is None):
            self.saves.append(DraftSave(refused, "refused", reason))  # keeps what it was rendered from
        if not told_before:
            self.outcomes.append(Outcome(instance, refused.item_ids, "rejected", reason, title_of(items)))

    def batches(self, candidates: list[ContentItem]) -> tuple[list[list[ContentItem]], list[ContentItem], DigestScreen]:
        """The drafts to render (one item each, or a digest's one issue), the backlog and the digest's screen."""
        channel, config, instance = self.channel, self.config, self.instance
        if not channel.digest:
            return [[item] for item in candidates], [], DigestScreen()
        # One refused item must not sink the whole digest: refuse it alone, with its reason.
        admitted, refused = _admit_each(channel, candidates)
        for item, reason in refused:
            self.reject([item], reason)
        # An item with possible PHI drops out of the issue, held alone; the issue goes out on time with the rest.
        screen = screen_digest(channel, self.ledger, self.check, admitted, account=config.account, dry_run=self.dry_run)
        for held in screen.held:
            if held.new:
                detail = held_reason(held.draft_id, held.findings) + "; left out of this issue"
                self.outcomes.append(
                    Outcome(instance, held.draft.item_ids, "held", detail, held.item.title, held.draft)
                )
        admitted = screen.clear
        batches = [admitted[: config.max_items_per_run]] if admitted else []
        return batches, admitted[config.max_items_per_run :], screen

    def render(
        self, batches: list[list[ContentItem]], backlog: list[ContentItem], state: DraftState
    ) -> tuple[list[str], list[ContentItem]]:
        """Render each batch, refusing those that break a rule; the keys of the drafts kept, and the backlog."""
        instance, config, ledger = self.instance, self.config, self.ledger
        kept: list[str] = []
        held_before = (
            {} if self.dry_run else {stored.draft.key: stored.draft for stored in ledger.drafts(instance, ["held"])}
        )
        for number, batch in enumerate(batches):
            if len(kept) >= config.max_items_per_run:
                backlog = [item for rest in batches[number:] for item in rest]
                break
            rendered_from = render_fingerprint(self.channel, batch, self.templates)
            if self.unchanged.get(_key(instance, batch)) == rendered_from:
                continue  # refused before, and nothing it was rendered from has changed: staff were told once
            try:
                draft = self.channel.render(batch)
            except RenderError as exc:
                self.reject(batch, exc.reason, rendered_from)
                continue
            # Kept with the draft, so a run can tell a draft waiting for approval is as it would render now.
            draft = replace(draft, measures=draft.measures | {RENDERED_FROM: rendered_from})
            kept.append(draft.key)
            findings = phi_findings(self.check, draft, batch) + care_findings(
                self.check, self.settings, instance, draft
            )
            if self.dry_run:
                shown: tuple[OutcomeState, str] = (
                    ("held", held_reason(None, findings)) if findings else ("preview", describe_measures(draft))
                )
                self.outcomes.append(Outcome(instance, draft.item_ids, *shown, title_of(batch), draft))
                continue
            held_earlier = already_held(ledger, draft, held_before)
            self.stored.append((len(self.saves), len(self.outcomes), draft, batch, findings, held_earlier))
            self.saves.append(DraftSave(draft, state, hold=(fingerprint(draft), findings) if findings else None))
        return kept, backlog

    def report_saved(self, state: DraftState, screen: DigestScreen) -> None:
        """Save the run's drafts, then put the outcomes that depend on what was stored in their places."""
        instance, ledger = self.instance, self.ledger
        saved = ledger.save_drafts(self.config.account, self.saves) if self.saves else []
        for save, place, draft, batch, findings, held_earlier in reversed(self.stored):  # from the end: places stay put
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
            self.outcomes.insert(place, outcome)

    def skip(self, backlog: list[ContentItem]) -> None:
        """More new items than the channel sends per run: the newest go out, the older ones never go out late."""
        instance, config, ledger = self.instance, self.config, self.ledger
        reason = f"older than the {config.max_items_per_run} newest new items of this run (max_items_per_run)"
        if not self.dry_run:
            skipped = [item.id for item in backlog]
            ledger.skip_items(instance, config.account, skipped, reason)
            # Their drafts from earlier runs (approved, waiting for a slot) go too: skipped means never sent.
            ledger.forget_drafts(instance, config.account, [Draft(instance, (item,), ()).key for item in skipped])
        self.outcomes.extend(Outcome(instance, (item.id,), "skipped", reason, item.title) for item in backlog)


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
