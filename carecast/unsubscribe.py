"""One-click unsubscribe tokens (RFC 8058) and what the practice's unsubscribe endpoint does with one.

Every newsletter carries, in its ``List-Unsubscribe`` header and its footer, a link with a token standing for the
list and the recipient, so the endpoint can act on a single POST without a login. A token is a random id
(192 bits, URL-safe base64) the ledger maps to the list and the address (:meth:`Ledger.issue_unsubscribe_token`):
it says nothing about the recipient to whoever sees a forwarded newsletter or a link in a log, and nobody can
unsubscribe someone else by guessing one. Opaque tokens never expire: CAN-SPAM wants the link to work for at least
30 days after sending, and an opt-out honoured late is never harmful.

Version 1 tokens, issued before, are ``<payload>.<signature>``, both URL-safe base64 without padding; the payload
is compact JSON ``[version, list_id, address, issued_at_epoch_seconds]`` signed with the practice's
``unsubscribe_secret`` (HMAC-SHA256). They can be read, so none is issued any more; those already in inboxes keep
working for :data:`LEGACY_LIFETIME` (12 months) after they were issued, far beyond CAN-SPAM's 30 days.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from pydantic import SecretStr

from carecast.errors import TokenError
from carecast.ledger.contract import ChannelLedger
from carecast.model import now_utc, utc

VERSION = 1
#: How long a version 1 (signed, readable) token keeps working after it was issued.
LEGACY_LIFETIME = timedelta(days=365)
#: What an opaque token can be (URL-safe base64, far longer than the ledger's): anything else is not looked up.
_OPAQUE = re.compile(r"[A-Za-z0-9_-]{1,200}")
#: Keeps these signatures apart from any other use the practice might make of the same secret.
_CONTEXT = b"carecast unsubscribe token\x00"


class Token(NamedTuple):
    """What a genuine token says: the list, the recipient, and when it was issued (UTC, whole seconds)."""

    list_id: str
    address: str
    issued_at: datetime
    #: What an unsubscribe from this list suppresses: ``newsletter`` (the subscriber file, the type's one list) or
    #: ``newsletter:<channel>`` (one list among the practice's audiences).
    scope: str = "newsletter"


def make_token(secret: SecretStr, list_id: str, address: str, issued_at: datetime) -> str:
    """The version 1 token that unsubscribes ``address`` from ``list_id``, signed with ``secret``: the format of
    links already sent, no longer issued (:meth:`Ledger.issue_unsubscribe_token` makes the opaque ones).

    Raises ValueError when ``issued_at`` is naive or ``secret`` is empty.
    """
    payload = json.dumps([VERSION, list_id, address, int(utc(issued_at).timestamp())], separators=(",", ":"))
    encoded = _encode(payload.encode())
    return f"{encoded}.{_encode(_sign(secret, encoded))}"


def read_token(secret: SecretStr, token: str) -> Token:
    """The list, address and issue time ``token`` names, once its signature is proven to be ``secret``'s.

    Raises TokenError when the token is malformed or its signature does not match (the reason never quotes the
    token or the secret); ValueError when ``secret`` is empty.
    """
    encoded, dot, _ = token.partition(".")
    if not dot or not token.isascii():
        raise TokenError("not a signed token")
    expected = f"{encoded}.{_encode(_sign(secret, encoded))}"
    # The whole token is compared, so a second spelling of the same bytes (unused base64 bits) is refused too.
    if not hmac.compare_digest(expected.encode(), token.encode()):
        raise TokenError("the signature does not match")
    try:
        version, list_id, address, issued = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise TokenError("the payload is unreadable") from exc
    if version != VERSION or not isinstance(list_id, str) or not isinstance(address, str) or type(issued) is not int:
        raise TokenError("the payload is not a version 1 token")
    try:
        issued_at = datetime.fromtimestamp(issued, UTC)
    except (OverflowError, OSError, ValueError) as exc:  # a time no datetime holds: never one CareCast wrote
        raise TokenError("the payload's issue time is out of range") from exc
    return Token(list_id, address, issued_at)


def verify_token(ledger: ChannelLedger, secret: SecretStr, token: str, now: datetime | None = None) -> Token:
    """What a genuine ``token`` stands for: an opaque one the ledger issued, or a version 1 token signed with
    ``secret`` and issued less than :data:`LEGACY_LIFETIME` before ``now``.

    Raises TokenError when it is neither (the reason never quotes the token); LedgerError when the ledger fails.
    """
    if "." in token:
        request = read_token(secret, token)
        if request.issued_at + LEGACY_LIFETIME < (now or now_utc()):
            raise TokenError(f"a version 1 token older than {LEGACY_LIFETIME.days} days")
        return request
    issued = ledger.unsubscribe_token(token) if _OPAQUE.fullmatch(token) else None
    if issued is None:
        raise TokenError("no such token was issued")
    return Token(issued.list_id, issued.address, issued.created_at, issued.channel_type)


def apply_unsubscribe(
    ledger: ChannelLedger,
    secret: SecretStr,
    token: str,
    *,
    channel_type: str = "newsletter",
    everything: bool = False,
    now: datetime | None = None,
) -> Token:
    """Record the one-click unsubscribe ``token`` asks for: its address gets nothing more from the token's list, or
    with ``everything`` no email at all from the practice (every list of ``channel_type``, CAN-SPAM).

    Idempotent (a second click keeps the first record). Returns what the token named. Raises TokenError for a
    token that is not genuine (see :func:`verify_token`), leaving the ledger untouched; LedgerError when the ledger
    fails.
    """
    request = verify_token(ledger, secret, token, now)
    if everything:
        ledger.suppress(channel_type, request.address, "unsubscribed", "unsubscribed from all email of the practice")
    else:
        # A signed token from before names no scope: its list was then the type's one list.
        scope = request.scope if "." not in token else channel_type
        ledger.suppress(scope, request.address, "unsubscribed", f"one-click unsubscribe from {request.list_id}")
    if "." not in token:
        ledger.use_unsubscribe_token(token)
    return request


def _sign(secret: SecretStr, encoded_payload: str) -> bytes:
    key = secret.get_secret_value().encode()
    if not key:
        raise ValueError("an unsubscribe secret must not be empty")
    return hmac.new(key, _CONTEXT + encoded_payload.encode(), hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
