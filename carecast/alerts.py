"""The notification route that works out of the box: what was refused, held or failed, and why, told to staff.

With ``notify.webhook`` configured, flows/notify.py posts there (and Prefect's automation does for deployed runs).
Without one, the practice's staff address (``practice.email``) gets an email, through the SMTP settings of the
first newsletter channel that has credentials (:meth:`carecast.channel.Channel.send_notice`); without those, the
email is written to the outbox, ``<outbox>/notifications/<time>-<n>.eml``, where IT finds it beside what the
channels would have sent. Framework-free; never raises for a route that fails: a notice is best effort, and the
reason stays in the run's state, its artifacts and ``carecast drafts`` all the same.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from carecast.channel import Outbox, make_channel
from carecast.config import Settings
from carecast.errors import CareCastError
from carecast.ledger import Ledger
from carecast.model import now_utc

#: The outbox folder of notices written when no SMTP server is configured.
NOTIFICATIONS = "notifications"
#: What staff are told about: refused by the rules, held for possible PHI, failed for good or left unknown.
TOLD = ("rejected", "held", "failed", "unknown")


@dataclass(frozen=True)
class Notice:
    """What staff are told: one line each for what was refused, held or failed, with why."""

    subject: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(["CareCast could not send everything:", "", *(f"- {line}" for line in self.lines), ""])


def notice_of(settings: Settings, what: str, rows: Sequence[dict[str, object]]) -> Notice | None:
    """A notice for the rows of a run (``channel``, ``title``, ``state``, ``detail``) that were refused, held or
    failed; None when none was."""
    told = [row for row in rows if row.get("state") in TOLD]
    if not told:
        return None
    lines = tuple(f"{row['channel']}: {row['title']}: {row['state']}: {row['detail']}" for row in told)
    return Notice(f"CareCast, {settings.practice.name}: {what}: {len(told)} not sent", lines)


def message(settings: Settings, notice: Notice) -> EmailMessage:
    """The notice as an email to the practice's staff address."""
    email = EmailMessage()
    email["Subject"] = notice.subject
    email["From"] = settings.practice.email
    email["To"] = settings.practice.email
    email["Date"] = format_datetime(now_utc())
    email["Message-ID"] = make_msgid(domain=settings.practice.email.rpartition("@")[2] or None)
    email.set_content(notice.text)
    return email


def send(settings: Settings, notice: Notice) -> str:
    """Email ``notice`` to the practice's staff address, or write it to the outbox; returns where it went.

    Raises nothing: when the SMTP server refuses, the notice is written to the outbox instead, saying so.
    """
    email = message(settings, notice)
    failure = ""
    for name, config in settings.channels.items():
        if not config.enabled:
            continue
        try:
            where = make_channel(settings, name).send_notice(email)
        except CareCastError as exc:
            failure = f"; email failed: {exc}"
            continue
        if where is not None:
            return where
    key = f"{now_utc():%Y%m%dT%H%M%S%f}-{os.getpid()}"  # unique across runs and processes
    try:
        path = Outbox(settings.path(settings.outbox).resolve()).write(NOTIFICATIONS, key, ".eml", bytes(email))
    except CareCastError as exc:
        return f"nowhere: {exc}{failure}"
    return f"{path}{failure}"


def _told_key(row: dict[str, object]) -> str:
    seen = json.dumps([row.get("channel"), row.get("items"), row.get("state"), row.get("detail")], default=str)
    return "told:" + hashlib.sha256(seen.encode()).hexdigest()


def untold(ledger: Ledger, rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """The rows refused, held or failed that staff were not told about yet (a held draft is checked again by
    every run: it is told once, and again only when its reason changes)."""
    return [row for row in rows if row.get("state") in TOLD and ledger.validators(_told_key(row)) is None]


def mark_told(ledger: Ledger, rows: Sequence[dict[str, object]]) -> None:
    """Remember that staff were told about ``rows``."""
    for row in rows:
        ledger.save_validators(_told_key(row), "told", None)
