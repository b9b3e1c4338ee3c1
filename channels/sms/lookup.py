"""Settling a text whose outcome is not known by asking Twilio, never by sending it again blindly.

A text is in doubt when its run died with it in flight (the resumed claim made it ``unknown``) or Twilio's answer to
it was lost (:data:`carecast.inflight.LOST`). Before a publication sends anything, each recipient in doubt is looked
up in Twilio's message list (``GET /Messages.json?To=...``, the text's body compared, and only a message Twilio
created since the recipient was claimed: an older text that says the same is not this one): found, it is recorded
sent with its ``MessageSid``; not found, it is claimable again and this run texts it. A recipient Twilio cannot be asked
about now stays in doubt, is left out of this run and asked about again by the next one: nothing waits on a person
and nobody is texted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests

from carecast.plugin import LOST, TO_RESEND, DeliveryRecord, made_since
from carecast.plugin import ChannelLedger as Ledger

#: Why a recipient in doubt is texted again: Twilio has no such message.
NOT_AT_TWILIO = "not in Twilio's message list: texted again"
#: How many of a recipient's newest messages are read.
PAGE_SIZE = 50

#: The MessageSid of this publication's text to an address claimed at a time (None: unbounded), None when Twilio
#: has none; raises requests.RequestException or ValueError when Twilio cannot be asked.
Find = Callable[[str, datetime | None], str | None]


def in_doubt(record: DeliveryRecord) -> bool:
    """Whether Twilio must be asked before this recipient is texted (again): unknown, lost, or resolved ``--resend``
    by staff (a whole chunk may be; only those Twilio has no text to are texted)."""
    retry = record.state == "failed" and record.transient and record.error in (LOST, TO_RESEND)
    return record.state == "unknown" or retry


def settle(ledger: Ledger, publication: int, find: Find) -> set[str]:
    """Ask Twilio (``find``) about every recipient of ``publication`` in doubt and record what it says. Returns the
    addresses it could not be asked about, still in doubt."""
    still: set[str] = set()
    for address, record in ledger.deliveries(publication).items():
        if not in_doubt(record):
            continue
        try:
            sid = find(address, record.claimed_at)
        except (requests.RequestException, ValueError):
            if record.state == "unknown":
                ledger.finish_delivery(publication, address, "failed", error=LOST, transient=True)
            still.add(address)
            continue
        if record.state == "failed":
            ledger.claim_delivery(publication, address)
        if sid is None:
            ledger.finish_delivery(publication, address, "failed", error=NOT_AT_TWILIO, transient=True)
        else:
            ledger.finish_delivery(publication, address, "sent", provider_id=sid)
    return still


def finder(session: requests.Session, url: str, body: str, sender: str | None, timeout: float, skew: timedelta) -> Find:
    """``find`` for :func:`settle`: the sid of the newest message of Twilio's list at ``url`` to an address with
    ``body`` (from ``sender`` when the channel sends from a number), created since the claim less ``skew``."""

    def find(address: str, claimed: datetime | None) -> str | None:
        query = {"To": address, "PageSize": str(PAGE_SIZE), **({"From": sender} if sender else {})}
        response = session.get(url, params=query, timeout=timeout)
        if response.status_code != 200:
            raise ValueError(f"Twilio answered {response.status_code}")
        messages = response.json().get("messages")
        for message in messages if isinstance(messages, list) else []:
            if not isinstance(message, dict) or message.get("body") != body or not message.get("sid"):
                continue
            if made_since(_created(message.get("date_created")), claimed, skew):
                return str(message["sid"])
        return None

    return find


def _created(value: object) -> datetime | None:
    """A message's ``date_created`` (RFC 2822, ``Sat, 05 Dec 2026 16:20:00 +0000``), None when it is not one."""
    try:
        created = parsedate_to_datetime(value) if isinstance(value, str) else None
    except (TypeError, ValueError):
        return None
    # Twilio's times are GMT; ``-0000`` parses without a zone.
    return created.replace(tzinfo=UTC) if created is not None and created.tzinfo is None else created
