"""Unsubscribe tokens: random ids standing for a recipient of a list, so an unsubscribe link names nobody."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, update

from carecast.ledger.schema import UnsubscribeTokenRow
from carecast.ledger.store import LedgerStore
from carecast.model import now_utc

#: Random bytes of a token: 192 bits, beyond guessing.
TOKEN_BYTES = 24


@dataclass(frozen=True)
class UnsubscribeToken:
    """What a token stands for: the channel type, the list and the recipient, when it was made and first used."""

    channel_type: str
    list_id: str
    address: str
    created_at: datetime
    used_at: datetime | None


class TokenLedger(LedgerStore):
    """Issue and look up unsubscribe tokens."""

    def issue_unsubscribe_token(self, channel_type: str, list_id: str, address: str) -> str:
        """A new random token (URL-safe, no padding) for ``address`` on ``list_id``."""
        return self.issue_unsubscribe_tokens(channel_type, list_id, [address])[address]

    def issue_unsubscribe_tokens(self, channel_type: str, list_id: str, addresses: Sequence[str]) -> dict[str, str]:
        """A new random token for each of ``addresses`` on ``list_id``, all written in one transaction (a fan-out
        issues a chunk's before sending to any of them)."""
        now = now_utc()
        tokens = {address: secrets.token_urlsafe(TOKEN_BYTES) for address in addresses}
        if tokens:
            rows = [
                {"id": token, "channel_type": channel_type, "list_id": list_id, "address": address}
                | {"created_at": now, "used_at": None}
                for address, token in tokens.items()
            ]
            with self._session() as session, session.begin():
                session.execute(insert(UnsubscribeTokenRow), rows)
        return tokens

    def unsubscribe_token(self, token: str) -> UnsubscribeToken | None:
        """What ``token`` stands for, or None when no such token was issued."""
        with self._session() as session:
            row = session.get(UnsubscribeTokenRow, token)
            if row is None:
                return None
            return UnsubscribeToken(row.channel_type, row.list_id, row.address, row.created_at, row.used_at)

    def use_unsubscribe_token(self, token: str) -> None:
        """Record the first use of ``token`` (a later click keeps the first time)."""
        with self._session() as session, session.begin():
            session.execute(
                update(UnsubscribeTokenRow)
                .where(UnsubscribeTokenRow.id == token, UnsubscribeTokenRow.used_at.is_(None))
                .values(used_at=now_utc())
            )
