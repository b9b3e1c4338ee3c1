"""Signed one-click unsubscribe tokens (RFC 8058) and what the practice's unsubscribe endpoint does with one.

Every newsletter carries, in its ``List-Unsubscribe`` header and its footer, a link with a token naming the list
and the recipient, signed with the practice's secret (HMAC-SHA256), so the endpoint can act on a single POST
without a login and nobody can unsubscribe someone else by editing the link. A token is
``<payload>.<signature>``, both URL-safe base64 without padding; the payload is compact JSON
``[version, list_id, address, issued_at_epoch_seconds]``.

Tokens never expire: CAN-SPAM wants the unsubscribe link to work for at least 30 days after sending, and an
opt-out honoured late is never harmful, so there is no age after which a genuine request is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import NamedTuple

from pydantic import SecretStr

from carecast.errors import TokenError
from carecast.ledger import Ledger
from carecast.model import utc

VERSION = 1
#: Keeps these signatures apart from any other use the practice might make of the same secret.
_CONTEXT = b"carecast unsubscribe token\x00"


class Token(NamedTuple):
    """What a genuine token says: the list, the recipient, and when it was issued (UTC, whole seconds)."""

    list_id: str
    address: str
    issued_at: datetime


def make_token(secret: SecretStr, list_id: str, address: str, issued_at: datetime) -> str:
    """The URL-safe token that unsubscribes ``address`` from ``list_id``, signed with ``secret``.

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
    return Token(list_id, address, datetime.fromtimestamp(issued, UTC))


def apply_unsubscribe(ledger: Ledger, secret: SecretStr, token: str, *, channel_type: str = "newsletter") -> Token:
    """Record the one-click unsubscribe ``token`` asks for: its address gets nothing more on ``channel_type``.

    Idempotent (a second click keeps the first record). Returns what the token named. Raises TokenError for a
    token that is not genuine, leaving the ledger untouched; LedgerError when the ledger fails.
    """
    request = read_token(secret, token)
    ledger.suppress(channel_type, request.address, "unsubscribed", f"one-click unsubscribe from {request.list_id}")
    return request


def _sign(secret: SecretStr, encoded_payload: str) -> bytes:
    key = secret.get_secret_value().encode()
    if not key:
        raise ValueError("an unsubscribe secret must not be empty")
    return hmac.new(key, _CONTEXT + encoded_payload.encode(), hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
