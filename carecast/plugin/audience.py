"""Audience helpers a channel that sends to people may use (public plugin API): who a publication addresses
(streamed from the ledger, suppressions applied), sending in batches, quiet hours and opt-out keywords,
unsubscribe tokens, and per-recipient link codes."""

from __future__ import annotations

from carecast.audience import Subscriber, e164
from carecast.batches import InFlight, batched
from carecast.compliance import QuietHours, handle_inbound, recipient_zones
from carecast.links import RecipientLinks
from carecast.recipients import addressed, list_scope
from carecast.unsubscribe import Token, apply_unsubscribe, verify_token

__all__ = [
    "InFlight",
    "QuietHours",
    "RecipientLinks",
    "Subscriber",
    "Token",
    "addressed",
    "apply_unsubscribe",
    "batched",
    "e164",
    "handle_inbound",
    "list_scope",
    "recipient_zones",
    "verify_token",
]
