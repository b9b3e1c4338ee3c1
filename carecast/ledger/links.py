"""Short links and their clicks: a random code per item, channel and full URL; one row per request for it.

A code is drawn from ``secrets`` (never derived from the item, the channel or a recipient), so knowing one link
tells nothing about another. A click row holds when, ``person`` or ``preview``, and a class of user agent: never
an address or the user agent itself.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from carecast.errors import LedgerError
from carecast.ledger.schema import ClickRow, ShortLinkRow, SubscriberRow
from carecast.ledger.store import LedgerStore, insert_new
from carecast.model import now_utc

#: Random bytes of a code: 6 give 8 URL-safe characters, 2^48 codes, beyond guessing one of a practice's few
#: thousand links (a guess costs a 404 request).
CODE_BYTES = 6
#: Fresh codes tried when one drawn is taken already (at 2^48, practically never twice).
CODE_TRIES = 5


@dataclass(frozen=True)
class ShortLink:
    """What a code stands for: its row id, the item and channel it was made for, and the full URL."""

    id: int
    code: str
    item_id: str
    channel: str
    target: str


@dataclass(frozen=True)
class Click:
    """One request for a short link, with what its link was made for."""

    at: datetime
    kind: str
    agent: str
    item_id: str
    channel: str
    recipient: int


def _hash(target: str) -> str:
    return hashlib.sha256(target.encode()).hexdigest()


class LinkLedger(LedgerStore):
    """Make, look up and count short links."""

    def short_code(self, item_id: str, channel: str, target: str, recipient: int = 0) -> str:
        """The code of ``target`` for ``item_id`` on ``channel`` (and ``recipient``, a subscriber row id, or 0 for
        everyone): the one made before, else a new random one. Racing callers get the same code."""
        key = {"item_id": item_id, "channel": channel, "target_hash": _hash(target), "recipient": recipient}
        for _ in range(CODE_TRIES):
            try:
                with self._session() as session, session.begin():
                    found = session.scalar(select(ShortLinkRow.code).filter_by(**key))
                    if found is not None:
                        return found
                    code = secrets.token_urlsafe(CODE_BYTES)
                    row = key | {"code": code, "target": target, "created_at": now_utc()}
                    if insert_new(session, ShortLinkRow, [row], list(key)):
                        return code
                # Another process made this link in between: the next round reads its code.
            except IntegrityError:
                continue  # the random code was taken: draw another
        raise LedgerError("no free short code after several tries")

    def short_link(self, code: str) -> ShortLink | None:
        """The link ``code`` stands for, or None when there is none."""
        with self._session() as session:
            row = session.scalar(select(ShortLinkRow).where(ShortLinkRow.code == code))
            if row is None:
                return None
            return ShortLink(row.id, row.code, row.item_id, row.channel, row.target)

    def record_clicks(self, clicks: Sequence[tuple[int, str, str, datetime]]) -> None:
        """Count requests for short links, in one transaction: each (link id, ``person`` or ``preview``, the agent's
        class, when)."""
        rows = [{"link_id": link, "kind": kind, "agent": agent[:40], "at": at} for link, kind, agent, at in clicks]
        if rows:
            with self._session() as session, session.begin():
                session.execute(insert(ClickRow), rows)

    def clicks(self, since: datetime | None = None, channels: Sequence[str] | None = None) -> list[Click]:
        """Every click since ``since`` (all when None), oldest first, with its link's item and channel."""
        query = (
            select(ClickRow.at, ClickRow.kind, ClickRow.agent, ShortLinkRow.item_id, ShortLinkRow.channel)
            .add_columns(ShortLinkRow.recipient)
            .join(ShortLinkRow, ShortLinkRow.id == ClickRow.link_id)
            .order_by(ClickRow.at, ClickRow.id)
        )
        if since is not None:
            query = query.where(ClickRow.at >= since)
        if channels:
            query = query.where(ShortLinkRow.channel.in_(channels))
        with self._session() as session:
            return [Click(*row) for row in session.execute(query)]

    def recipient_codes(
        self, codes: Sequence[str], channel_type: str, addresses: Sequence[str]
    ) -> dict[tuple[str, str], str]:
        """For each short link of ``codes`` and each subscriber of ``channel_type`` at ``addresses``, a code of its
        own (random, made once; the row, not the code, knows whose it is): ``{(code, address): personal code}``.
        An address with no subscriber row keeps the shared codes. Racing callers get the same codes."""
        for _ in range(CODE_TRIES):
            try:
                with self._session() as session, session.begin():
                    return self._recipient_codes(session, codes, channel_type, addresses)
            except IntegrityError:
                continue  # a random code was taken: draw others
        raise LedgerError("no free short codes after several tries")

    def _recipient_codes(
        self, session: Session, codes: Sequence[str], channel_type: str, addresses: Sequence[str]
    ) -> dict[tuple[str, str], str]:
        people = dict(
            session.execute(
                select(SubscriberRow.id, SubscriberRow.address).where(
                    SubscriberRow.channel_type == channel_type, SubscriberRow.address.in_(addresses)
                )
            ).all()
        )
        shared = session.scalars(select(ShortLinkRow).where(ShortLinkRow.code.in_(codes))).all()
        keys = ["item_id", "channel", "target_hash", "recipient"]
        rows = [
            {"item_id": link.item_id, "channel": link.channel, "target_hash": link.target_hash, "recipient": person}
            | {"target": link.target, "code": secrets.token_urlsafe(CODE_BYTES), "created_at": now_utc()}
            for link in shared
            for person in people
        ]
        insert_new(session, ShortLinkRow, rows, keys)
        made = session.execute(
            select(ShortLinkRow.item_id, ShortLinkRow.channel, ShortLinkRow.target_hash, ShortLinkRow.recipient)
            .add_columns(ShortLinkRow.code)
            .where(
                ShortLinkRow.recipient.in_(people), ShortLinkRow.target_hash.in_({link.target_hash for link in shared})
            )
        ).all()
        personal = {(item, channel, digest, person): code for item, channel, digest, person, code in made}
        return {
            (link.code, address): personal[(link.item_id, link.channel, link.target_hash, person)]
            for link in shared
            for person, address in people.items()
        }
