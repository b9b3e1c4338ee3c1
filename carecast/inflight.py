"""One request that must reach its provider at most once: claimed before it is sent, asked about before it is sent
again.

A post the provider takes without an idempotency key (a Facebook Page post, a Google Business Profile local post,
Instagram's publish, a LinkedIn post) goes through :func:`send_once`, and so does a Mastodon status, whose
Idempotency-Key makes posting it again the way to ask. Its request is claimed in the ledger as
``part N`` of its publication before it is sent, and its outcome recorded as soon as it is known. A request whose
outcome is not known (its run died with it in flight, so the resumed claim is ``unknown``; or its answer was lost,
``PublishError.maybe_sent``) is never sent again on its own:

- where the provider can be asked (``lookup``), the next attempt asks first: found, it is recorded sent with the
  provider's id; not found, it is sent. Without an idempotency key the provider is asked by content, so the time
  the request was claimed is kept while it is in doubt (:func:`claim_time`): a post made before it (the same text
  posted last year, or by staff by hand) is not this request's (:func:`made_since`). When the provider cannot be
  asked right now the attempt fails transiently and the next one asks again, so nothing waits on a person and
  nothing is stuck;
- without a lookup it stays ``unknown`` for a person to check and settle (``carecast resolve``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from carecast.channel import PublishContext
from carecast.errors import AlreadyClaimed, CredentialError, PublishError
from carecast.ledger import IN_FLIGHT, part_address
from carecast.model import Receipt, now_utc

#: The error of a request whose outcome is not known: the next attempt asks the provider before sending it.
LOST = "its outcome is not known (its answer was lost, or its run died with it in flight); the provider is asked first"

#: How many times one attempt asks the provider before leaving the question to the next run.
LOOKUP_TRIES = 3

#: Asks the provider for what an earlier request made: its receipt, or None when the provider has no such thing.
#: Raises PublishError or CredentialError when the provider cannot be asked.
Lookup = Callable[[], Receipt | None]


def claim_time(context: PublishContext) -> datetime | None:
    """When the request of the publication in ``context`` now in doubt was claimed (kept while it is asked about):
    what a lookup by content bounds its match by. None when not recorded (a ledger older than the record).
    Raises LedgerError as the ledger does."""
    record = context.ledger.deliveries(context.publication_id).get(part_address(1))
    return record.claimed_at if record is not None else None


def provider_time(value: object) -> datetime | None:
    """A provider's ISO 8601 / RFC 3339 time (``2026-12-05T16:20:00+0000``, ``…Z``) as an aware datetime; None when
    ``value`` is none or names no zone (it cannot be compared with a claim's time)."""
    try:
        made = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return made if made is not None and made.tzinfo is not None else None


def made_since(created: datetime | None, claimed: datetime | None, skew: timedelta) -> bool:
    """Whether a post the provider dates ``created`` can be the request claimed at ``claimed``: made at or after
    the claim, less ``skew`` for the provider's clock. Unbounded when the claim's time is not recorded; a post the
    provider gives no time for cannot be told apart from an older one, so it is not taken."""
    if claimed is None:
        return True
    return created is not None and created >= claimed - skew


def send_once(channel: str, context: PublishContext, send: Callable[[], Receipt], lookup: Lookup | None) -> Receipt:
    """``send()`` the publication's one request under a claim, unless the provider already has it (see the module
    docstring); the receipt of what the provider holds.

    Raises PublishError: transient when the provider cannot be asked whether it has an earlier request (asked again
    next time) or as ``send`` raised it (a lost answer: transient, asked about next time; without ``lookup`` the
    request is left ``unknown`` for ``carecast resolve`` instead); permanent when a person dropped the request.
    Raises CredentialError as ``send`` or ``lookup`` does, the request left claimable again.
    """
    ledger, publication, address = context.ledger, context.publication_id, part_address(1)
    record = ledger.deliveries(publication).get(address)
    if record is not None and record.state in ("sent", "delivered"):
        # Settled by a person (``resolve --sent``) or sent by an attempt that died before the publication's record.
        ids = (record.provider_id,) if record.provider_id else ()
        where = record.provider_id or "settled: the provider has it"
        return Receipt(location=where, sent_at=now_utc(), provider_ids=ids)
    in_doubt = record is not None and (
        record.state in ("claimed", "unknown") or (record.state == "failed" and record.error == LOST)
    )
    claimed = record.claimed_at if in_doubt and record is not None else None
    if in_doubt and lookup is None:
        ledger.mark_unknown(publication, address, IN_FLIGHT)
        raise PublishError(channel, f"{IN_FLIGHT}; check, then carecast resolve {publication}", transient=False)
    if record is not None and record.state == "unknown":
        ledger.finish_delivery(publication, address, "failed", error=LOST, transient=True)
    if record is None or record.state != "claimed":
        try:
            ledger.claim_delivery(publication, address, since=claimed)
        except AlreadyClaimed as exc:
            raise PublishError(channel, "dropped by staff (carecast resolve --drop)", transient=False) from exc
    if in_doubt and lookup is not None:
        try:
            found = _ask(lookup)
        except (PublishError, CredentialError) as exc:
            ledger.finish_delivery(publication, address, "failed", error=LOST, transient=True)
            reason = f"{LOST}, but it cannot be asked now ({exc}); it is asked again next run"
            raise PublishError(channel, reason, transient=True) from exc
        if found is not None:
            ledger.finish_delivery(publication, address, "sent", provider_id=_first(found))
            return found
    return _send(channel, context, send, lookup is not None)


def _send(channel: str, context: PublishContext, send: Callable[[], Receipt], can_ask: bool) -> Receipt:
    """``send()`` the claimed request and record its outcome; raises as ``send_once`` says."""
    ledger, publication, address = context.ledger, context.publication_id, part_address(1)
    try:
        receipt = send()
    except PublishError as exc:
        if exc.maybe_sent and not can_ask:
            ledger.mark_unknown(publication, address, f"{IN_FLIGHT} ({exc.reason})")
            reason = f"{exc.reason}; check, then carecast resolve {publication}"
            raise PublishError(channel, reason, transient=False) from exc
        # A refused request is claimable again; the publication's own failure says whether it is tried again.
        error = LOST if exc.maybe_sent else exc.reason
        ledger.finish_delivery(publication, address, "failed", error=error, transient=True)
        raise
    except CredentialError as exc:
        ledger.finish_delivery(publication, address, "failed", error=str(exc), transient=True)
        raise
    ledger.finish_delivery(publication, address, "sent", provider_id=_first(receipt))
    return receipt


def _ask(lookup: Lookup) -> Receipt | None:
    """``lookup()``, asked again at once after a transient failure, up to ``LOOKUP_TRIES`` times: asking is
    harmless to repeat, and each answer it gets saves a run. Raises what the last try raised."""
    attempt = 1
    while True:
        try:
            return lookup()
        except PublishError as exc:
            if not exc.transient or attempt >= LOOKUP_TRIES:
                raise
            attempt += 1


def _first(receipt: Receipt) -> str | None:
    return receipt.provider_ids[0] if receipt.provider_ids else None
