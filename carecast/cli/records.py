"""``carecast audience``, ``audit``, ``report`` and ``webhooks``: subscribers, the record of sends, inbound calls."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

from carecast.audience import ADDRESS_COLUMN, read_audience
from carecast.cli.common import (
    EXIT_FAILED,
    AddCommand,
    add_config,
    config_ledger,
    open_config_ledger,
    table,
    utc_moment,
)
from carecast.errors import ConfigError


def _audit(args: argparse.Namespace) -> int:
    from carecast.audit import audit, render

    with config_ledger(args.config) as (settings, ledger):
        print(render(audit(settings, ledger, args.recipient, args.since), args.form))
    return 0


def _report(args: argparse.Namespace) -> int:
    from carecast.report import weekly

    with config_ledger(args.config) as (settings, ledger):
        print(weekly(settings, ledger, args.since, args.form, args.charts))
    return 0


def _audience_import(args: argparse.Namespace) -> int:
    channel_type = args.channel_type or args.file.stem
    if channel_type not in ADDRESS_COLUMN:
        raise ConfigError(args.file, [("", f"--type {' or '.join(sorted(ADDRESS_COLUMN))} (not in the file name)")])
    audience = read_audience(args.file, channel_type)
    _, ledger = open_config_ledger(args.config, create=True)  # subscribers may well come before the first run
    try:
        added, updated = ledger.save_subscribers(channel_type, audience.subscribers)
    finally:
        ledger.close()
    print(f"{args.file}: {added} added, {updated} updated, {len(audience.rejected)} problem(s) in rejected rows")
    if audience.rejected:
        table(["row", "why"], [[where, why] for where, why in audience.rejected])
    return EXIT_FAILED if audience.rejected else 0


def _webhooks(args: argparse.Namespace) -> int:
    from carecast.practice import open_practice
    from carecast.webhooks import WebhookApp, check_urls, make_server  # loads uvicorn: only for this command

    with open_practice(args.config) as practice:
        app = WebhookApp(practice.settings, practice.ledger, args.public_url)
        for problem in check_urls(practice.settings, args.public_url) if args.public_url else ():
            print(f"warning: {problem}", file=sys.stderr)
        try:
            server = make_server(app, args.host, args.port)
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        base = args.public_url or f"http://{args.host}:{server.server_port}"
        print(f"Serving on {args.host}:{server.server_port} (Ctrl-C stops):", flush=True)
        for methods, path in app.endpoints:
            print(f"  {methods} {base.rstrip('/')}{path}", flush=True)
        with server, contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
        app.close()
    return 0


def _web_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"an http(s) base URL such as https://hooks.example.com, not {value!r}")
    return value


def add_record_commands(command: AddCommand) -> None:
    audience = command("audience", _audience_import, "import subscribers from a CSV file into the ledger")
    audience.add_argument("action", choices=["import"], help="import: add or update the file's subscribers")
    audience.add_argument(
        "file", type=Path, metavar="FILE", help="a CSV of subscribers with their consent (newsletter.csv, sms.csv)"
    )
    audience.add_argument("--type", dest="channel_type", choices=sorted(ADDRESS_COLUMN), help="default: the file name")
    audit = command("audit", _audit, "every message sent, skipped or suppressed, with the consent it relied on")
    audit.add_argument("--recipient", metavar="ADDR", help="one phone number (E.164) or email address")
    audit.add_argument("--since", type=utc_moment, metavar="WHEN", help="as for status --since")
    audit.add_argument("--format", dest="form", default="table", choices=["table", "csv", "json"])
    report = command("report", _report, "did it work? sends, deliveries, clicks (people vs previews), engagement")
    report.add_argument("--since", type=utc_moment, metavar="WHEN", help="as for status --since; default: 7 days ago")
    report.add_argument("--format", dest="form", default="table", choices=["table", "csv", "json"])
    report.add_argument("--charts", type=Path, metavar="DIR", help="also write the charts (PNG) into DIR")
    for sub in (audience, audit, report):
        add_config(sub)


def add_webhooks(command: AddCommand) -> None:
    webhooks = command(
        "webhooks", _webhooks, "serve the channels' inbound endpoints (Twilio's callbacks, one-click unsubscribe, ...)"
    )
    add_config(webhooks)
    webhooks.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    webhooks.add_argument("--port", type=int, default=8088, help="default: %(default)s")
    webhooks.add_argument(
        "--public-url", type=_web_url, metavar="URL", help="the base URL Twilio and subscribers call, if another"
    )
