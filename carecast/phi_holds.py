"""What the pipeline does with PHI findings: which hold a draft, and a digest that goes out without its held items.

A held item of a digest (the newsletter) drops out of the issue, which goes out on time with the rest: the item is
held alone, in a draft of its own marked :data:`HELD_OUT` that is never sent by itself; staff see what was found and
why, and release it (``carecast release``, the review form) or fix the item. Once released, it joins the next issue,
and that issue is released with the item's release (who, why), so the check before sending lets it go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from carecast.channel import Channel
from carecast.ledger import Ledger
from carecast.model import ContentItem, Draft
from carecast.phi import Finding, PhiCheck, fingerprint, uncovered

#: The mark in a draft's measures of a text staff edited (:func:`phi_findings` reads that text alone).
EDITED = "edited_by_staff"
#: The mark in a draft's measures of an item held out of a digest: its draft is never sent by itself.
HELD_OUT = "held_out_of_digest"


def phi_findings(check: PhiCheck, draft: Draft, items: Sequence[ContentItem]) -> list[Finding]:
    """What holds ``draft`` of ``items``: the findings in all of its text and in its items' own text (so a template
    or a shortening can neither hide one nor make one), less what their authorizations cover. A draft staff edited
    is checked on its own text: the edit is what goes out."""
    return uncovered(check.check_draft(draft, () if draft.measures.get(EDITED) else items), items)


def already_held(ledger: Ledger, draft: Draft, held: dict[str, Draft]) -> bool:
    """Whether this very text of ``draft`` was held before (``held``: the channel's held drafts by key): staff were
    told then, and are told again when its slot comes, not at every run."""
    earlier = held.get(draft.key)
    return earlier is not None and fingerprint(earlier) == fingerprint(draft)


@dataclass(frozen=True)
class HeldItem:
    """An item held out of a digest: its draft of its own (id None in a dry run), what was found, and whether the
    hold is new (staff are told of it now)."""

    item: ContentItem
    draft: Draft
    draft_id: int | None
    findings: list[Finding]
    new: bool


@dataclass
class DigestScreen:
    """A digest's items sorted by the PHI check: those that go in, those held out (with their findings, and whether
    the hold is new), and the releases of items that were held and may now go in."""

    clear: list[ContentItem] = field(default_factory=list)
    held: list[HeldItem] = field(default_factory=list)
    released: dict[str, tuple[str, str]] = field(default_factory=dict)
    released_keys: list[str] = field(default_factory=list)

    @property
    def kept(self) -> list[str]:
        """The keys of the held-out drafts: they stay while their items wait for staff."""
        return [held.draft.key for held in self.held]


def item_findings(check: PhiCheck, instance: str, item: ContentItem, issue: Sequence[ContentItem]) -> list[Finding]:
    """What the PHI check finds in ``item`` of a digest on its own, less what the issue's authorizations cover (one
    for the newsletter naming its patient covers them)."""
    return uncovered(check.check_draft(Draft(instance, (item.id,), ()), [item]), issue)


def screen_digest(
    channel: Channel,
    ledger: Ledger,
    check: PhiCheck,
    items: Sequence[ContentItem],
    *,
    account: str,
    dry_run: bool,
) -> DigestScreen:
    """Check each item of a digest on its own; hold each with findings out of the issue, in a draft of its own
    (not in a dry run). An item whose held text staff released goes in, with that release.

    Raises LedgerError when the ledger cannot be read or written, and RenderError when the channel cannot render
    an item alone (it rendered it in the digest, so only a broken template does).
    """
    screen = DigestScreen()
    held = {stored.draft.key: stored.draft for stored in ledger.drafts(channel.instance, ["held"])}
    for item in items:
        findings = item_findings(check, channel.instance, item, items)
        if not findings:
            screen.clear.append(item)
            continue
        alone = channel.render([item])
        alone = replace(alone, measures=alone.measures | {HELD_OUT: True})
        told = already_held(ledger, alone, held)
        if dry_run:
            screen.held.append(HeldItem(item, alone, None, findings, True))
            continue
        draft_id = ledger.save_draft(alone, account, "approved")
        if ledger.hold(draft_id, fingerprint(alone), findings):
            screen.held.append(HeldItem(item, alone, draft_id, findings, not told))
            continue
        release = ledger.holds(draft_id)[-1]
        screen.clear.append(item)
        screen.released[item.id] = (release.released_by or "staff", release.release_reason or "released")
        screen.released_keys.append(alone.key)
    return screen


def settle_digest(
    ledger: Ledger,
    draft_id: int,
    draft: Draft,
    findings: list[Finding],
    screen: DigestScreen,
    items: Sequence[ContentItem],
) -> list[Finding]:
    """The findings that still hold a digest draft: none when each is in an item staff released (then the issue is
    released with their words, so the check before sending lets it go). Raises LedgerError as the ledger does."""
    released = [item for item in items if item.id in screen.released]
    if not findings or not released:
        return findings
    texts = " ".join(f"{item.title} {item.summary_text} {item.image_alt or ''}" for item in released)
    if any(finding.matched[0] not in texts for finding in findings):
        return findings
    if ledger.hold(draft_id, fingerprint(draft), findings):
        by = ", ".join(sorted({screen.released[item.id][0] for item in released}))
        why = "; ".join(f"{item.title}: {screen.released[item.id][1]}" for item in released)
        ledger.release(draft_id, f"its held items were released ({why})", by)
    return []
