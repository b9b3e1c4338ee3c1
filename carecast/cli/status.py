"""``carecast status`` and ``resolve``: the ledger's publications, and settling those left unknown."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from carecast.cli.common import (
    AddCommand,
    add_config,
    open_config_ledger,
    shown_url,
    table,
    usage_error,
    utc_moment,
)
from carecast.ledger import (
    DeliveryRecord,
    Resolution,
)

RESOLUTIONS: dict[Resolution, str] = {
    "sent": "the provider has it: record it sent",
    "resend": "the provider does not have it: the next run sends it, once",
    "drop": "never send it",
}


#: Rows ``carecast status`` aligns together: the first page prints at once, whatever the size of the ledger.
STATUS_PAGE = 1000


def _status(args: argparse.Namespace) -> int:
    settings, ledger = open_config_ledger(args.config)
    shown = 0
    if args.channel is not None and args.channel not in settings.channels:
        ledger.close()
        usage_error(f"--channel {args.channel}: not a configured channel; choose from {', '.join(settings.channels)}")
    try:
        unknown = ledger.unknown_deliveries()
        chosen = {"channel": args.channel, "state": args.state, "since": args.since, "limit": args.limit}
        if args.json:
            # One record a line as they come, still one JSON array: a million publications never sit in memory.
            print("[")
            for number, record in enumerate(ledger.stream_publications(**chosen)):
                listed = record.to_json() | {"unknown": _unknown(unknown.get(record.id, []))}
                print(("," if number else "") + json.dumps(listed))
            print("]")
            return 0
        headers = ["id", "channel", "state", "when", "items", "where"]
        left: list[list[Any]] = []
        for number, page in enumerate(ledger.status_pages(**chosen, page=STATUS_PAGE)):
            table(headers, page, header=number == 0)
            shown += len(page)
            if unknown:  # rare: not a look-up per row of a million
                left += [
                    [row[0], row[1], d["part"] or d["recipient"], d["reason"]]
                    for row in page
                    if row[0] in unknown
                    for d in _unknown(unknown[row[0]])
                ]
    finally:
        ledger.close()
    if not shown:
        filtered = any(value is not None for value in (args.channel, args.state, args.since, args.limit))
        print(f"no publications{' match' if filtered else ''} in the ledger at {shown_url(settings.ledger_url())}")
    if left:
        print(
            "\nUnknown: check with the provider, then carecast resolve ID [--recipient ADDR|--part N] "
            "--sent|--resend|--drop"
        )
        table(["id", "channel", "recipient / part", "why"], left)
    return 0


def _unknown(deliveries: list[DeliveryRecord]) -> list[dict[str, str | None]]:
    """A publication's recipients and parts left ``unknown``, as ``carecast status`` shows them."""
    return [
        {"recipient": None if d.is_part else d.address, "part": d.address if d.is_part else None, "reason": d.error}
        for d in deliveries
    ]


def _resolve(args: argparse.Namespace) -> int:
    from carecast.errors import NotAtProvider
    from carecast.pipeline import make_channel
    from carecast.practice import load_settings
    from carecast.resolution import address_of, settle

    _, ledger = open_config_ledger(args.config)
    try:
        # The full settings (and their channels) only when the provider must be asked.
        summary = settle(
            ledger,
            lambda name: make_channel(load_settings(args.config), name),
            args.publication_id,
            args.decision,
            address=address_of(args.recipient, args.part),
            provider_id=args.provider_id,
        )
    except NotAtProvider as exc:
        print(
            f"publication {exc.publication_id}: the provider has no record of it for {len(exc.addresses)} "
            f"recipient(s) ({', '.join(exc.addresses)}); not settled: --resend or --drop them",
            file=sys.stderr,
        )
        return 1
    finally:
        ledger.close()
    print(summary)
    return 0


def add_status(command: AddCommand) -> None:
    status = command("status", _status, "list the ledger's publications")
    add_config(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--limit", type=int, metavar="N", help="only the newest N publications")
    status.add_argument(
        "--since",
        type=utc_moment,
        metavar="WHEN",
        help="only those since WHEN: an ISO date or time (UTC if no zone), a duration ago (2d, 36h, 90m, 1w) or "
        "today, yesterday, this week, last week",
    )
    status.add_argument("--channel", metavar="NAME", help="only this channel")
    status.add_argument("--state", choices=["claimed", "sent", "failed", "unknown"], help="only those in this state")


def add_resolve(command: AddCommand) -> None:
    resolve = command(
        "resolve",
        _resolve,
        "settle a publication left unknown by a run that died mid-send, once checked with the provider",
    )
    resolve.add_argument("publication_id", type=int, metavar="PUB_ID", help="the publication (carecast status)")
    which = resolve.add_mutually_exclusive_group()
    which.add_argument("--recipient", metavar="ADDR", help="only this recipient (default: every unknown one)")
    which.add_argument("--part", type=int, metavar="N", help="only this part of a thread")
    decision = resolve.add_mutually_exclusive_group(required=True)
    for name, meaning in RESOLUTIONS.items():
        decision.add_argument(f"--{name}", dest="decision", action="store_const", const=name, help=meaning)
    resolve.add_argument("--provider-id", metavar="ID", help="with --sent: the provider's id of it (a post's id)")
    add_config(resolve)
