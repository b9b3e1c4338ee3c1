"""``carecast drafts``, ``approve``, ``reject`` and ``release``: staff's review of drafts."""

from __future__ import annotations

import argparse
import getpass
from typing import get_args

from carecast.cli.common import (
    AddCommand,
    add_config,
    clip,
    config_ledger,
    open_config_ledger,
    table,
    usage_error,
)
from carecast.errors import LedgerError
from carecast.ledger import (
    DraftState,
    Ledger,
    StoredDraft,
)
from carecast.model import Draft


def _drafts(args: argparse.Namespace) -> int:
    """List drafts with why each waits, is held or was refused (the ledger's reason)."""
    _, ledger = open_config_ledger(args.config)
    try:
        stored = ledger.drafts(states=None if args.state == "all" else [args.state])
    finally:
        ledger.close()
    rows = [[d.id, d.channel, d.state, clip(_gist(d.draft) or "(no text)", 50), _why(d)] for d in stored]
    if rows:
        table(["id", "channel", "state", "text", "why"], rows)
    else:
        print(f"no {args.state} drafts")
    return 0


def _why(stored: StoredDraft) -> str:
    """Why a draft is in its state, in a line: the ledger's reason, or what waiting means."""
    if stored.state == "pending":
        return "waiting for approval: carecast approve ID, or the review deployment's form"
    return clip((stored.reason or "").replace("\n", " "), 90)


def _gist(draft: Draft) -> str:
    return draft.subject or draft.text.replace("\n", " ")


def _approve(args: argparse.Namespace) -> int:
    return _decide(args, "approved", None)


def _reject(args: argparse.Namespace) -> int:
    return _decide(args, "rejected", args.reason)


def _decide(args: argparse.Namespace, state: DraftState, reason: str | None) -> int:
    with config_ledger(args.config) as (_, ledger):
        _known_draft(ledger, args.draft_id)
        ledger.set_draft_state(args.draft_id, state, reason)
    print(f"draft {args.draft_id}: {state}")
    return 0


def _known_draft(ledger: Ledger, draft_id: int) -> None:
    """Exit 2 (a usage error) when the ledger has no draft ``draft_id``, listing the drafts staff can decide on."""
    if any(stored.id == draft_id for stored in ledger.drafts(states=["pending", "held"])):
        return
    try:
        ledger.draft(draft_id)
    except LedgerError:
        waiting = [f"{d.id} ({d.channel}, {d.state})" for d in ledger.drafts(states=["pending", "held"])]
        usage_error(f"no draft {draft_id}; drafts waiting: {', '.join(waiting) or 'none'} (carecast drafts)")


def _release(args: argparse.Namespace) -> int:
    with config_ledger(args.config) as (_, ledger):
        _known_draft(ledger, args.draft_id)
        ledger.release(args.draft_id, args.reason, args.by)
    print(f"draft {args.draft_id}: released by {args.by} and approved")
    return 0


def add_review_commands(command: AddCommand) -> None:
    drafts = command("drafts", _drafts, "list drafts waiting for approval (or in another state)")
    drafts.add_argument(
        "--state",
        default="pending",
        choices=[*get_args(DraftState), "all"],
        help="which drafts (default: %(default)s, those waiting for approval); each is listed with why",
    )
    approve = command("approve", _approve, "approve a draft: it is published at its channel's next slot")
    reject = command("reject", _reject, "reject a draft: it is never published")
    reject.add_argument("--reason", required=True, help="why, for the record")
    release = command("release", _release, "release a draft held for possible PHI: it is approved, with your reason")
    release.add_argument("--reason", required=True, help="why it may go out (e.g. the authorization's reference)")
    release.add_argument("--by", default=getpass.getuser(), help="who releases it (default: %(default)s)")
    for sub in (approve, reject, release):
        sub.add_argument("draft_id", type=int, metavar="ID", help="the draft's id (carecast drafts lists them)")
    for sub in (drafts, approve, reject, release):
        add_config(sub)
