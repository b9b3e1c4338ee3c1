"""The publish step of a run: claim and send a channel's due drafts, recording each outcome before the next."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from carecast.channel import CREDENTIAL_TO_FIX, Channel, Outbox, PublishContext, make_channel, unpaced
from carecast.config import Settings
from carecast.errors import (
    AlreadyClaimed,
    CredentialError,
    PublishError,
    RenderError,
)
from carecast.ledger import IN_FLIGHT, Ledger, StoredDraft, keep_claim_alive
from carecast.model import Draft, now_utc
from carecast.outcomes import Outcome, care_findings, held_reason, phi_check, title_of
from carecast.phi import PhiCheck, fingerprint
from carecast.phi_holds import HELD_OUT, phi_findings


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
    sender = _sender(settings, ledger, channel, stop, pace)
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
        stopped = _refused_or_held(settings, ledger, channel, check, stored)
        if stopped is not None:
            outcomes.append(stopped)
            continue
        try:
            publication_id = ledger.claim(stored.id)
        except AlreadyClaimed:
            continue
        outcomes.append(sender.send(draft, publication_id, now))
    if channel.digest and any(outcome.state == "published" for outcome in outcomes):
        outcomes += still_held_out(ledger, instance)
    return outcomes


def _sender(
    settings: Settings, ledger: Ledger, channel: Channel, stop: threading.Event, pace: Callable[[str], None] | None
) -> _Sender:
    """What sends the channel's publications, paced by ``pace`` when the channel has a rate limit."""
    outbox = Outbox(settings.path(settings.outbox).resolve())
    limit = channel.rate_limit()
    paced = channel.paced(unpaced if pace is None or limit is None else partial(pace, limit.name))
    return _Sender(channel, ledger, outbox, settings.ledger.claim_timeout, stop, paced, settings.ledger.delivery_chunk)


def _refused_or_held(
    settings: Settings, ledger: Ledger, channel: Channel, check: PhiCheck, stored: StoredDraft
) -> Outcome | None:
    """Check a due draft again just before its claim: refused when an item no longer passes the channel's rules,
    held when its text has possible PHI staff did not release (recorded, with the outcome); None when it may go."""
    instance, draft = channel.instance, stored.draft
    drafted = ledger.items(draft.item_ids)
    title = title_of(drafted)
    try:
        for item in drafted:
            channel.admit(item)
    except RenderError as exc:
        ledger.set_draft_state(stored.id, "refused", exc.reason)
        return Outcome(instance, draft.item_ids, "rejected", exc.reason, title)
    findings = phi_findings(check, draft, drafted) + care_findings(check, settings, instance, draft)
    if findings and ledger.hold(stored.id, fingerprint(draft), findings):
        return Outcome(instance, draft.item_ids, "held", held_reason(stored.id, findings), title, draft)
    return None


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
