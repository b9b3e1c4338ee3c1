"""The ``carecast`` command: check a config, run the pipeline, measure text, show the ledger.

Exit codes: 0 done (everything due was published or deliberately skipped); 1 the run finished but something in it
failed (a source; a publication failed, left for a retry or unknown; every draft of a channel refused by the rules);
2 the configuration or the command line is wrong, and nothing ran.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import getpass
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, get_args
from urllib.parse import urlsplit

from pydantic import ConfigDict

from carecast.audience import ADDRESS_COLUMN, read_audience
from carecast.batches import batched
from carecast.config import DEFAULT_CONFIG, ChannelSettings, Settings, parse_settings, practice_files
from carecast.errors import CareCastError, ConfigError, LedgerError
from carecast.ledger import (
    DeliveryRecord,
    DraftState,
    Ledger,
    Resolution,
    StoredDraft,
    open_ledger,
)
from carecast.model import Draft
from carecast.project import (
    earlier_prefect,
    refuse_full_disk,
    refuse_missing_ledger,
    refuse_new_ledger,
    sqlite_path,
    use_project_prefect,
)
from carecast.starter import QUESTIONS, StarterValues, write_starter

# Each command imports the rest of what it needs (channel plugins, twitter-text, Jinja, Prefect) when it runs:
# `carecast status` on a million publications stays a small process that starts printing at once.

#: What ``carecast --help`` says first: plain text (the module's docstring is reStructuredText).
DESCRIPTION = "Check a CareCast config, run the pipeline, measure text, show the ledger, serve the webhooks."
EXIT_FAILED = 1
EXIT_USAGE = 2
#: Outcomes that make ``carecast run`` exit 1: a publication not done (failed, left for a retry, or unknown).
NOT_DONE = frozenset({"failed", "retry", "unknown"})
RESOLUTIONS: dict[Resolution, str] = {
    "sent": "the provider has it: record it sent",
    "resend": "the provider does not have it: the next run sends it, once",
    "drop": "never send it",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except CareCastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def console() -> NoReturn:
    """The ``carecast`` command itself (the console script): :func:`main`, then out.

    After a command that loaded Prefect, the process ends as soon as its work is done and written (other threads
    finished, exit handlers run, output flushed: Prefect's logs and events are sent by then), without tearing the
    interpreter down object by object, which took a `carecast run` a second more. Nothing is lost that way: every
    record is committed as it is made, and the design already survives a process that dies at any line.
    """
    code = main()
    if "prefect" not in sys.modules:
        sys.exit(code)
    for thread in threading.enumerate():
        if not thread.daemon and thread is not threading.current_thread():
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carecast",
        description=DESCRIPTION,
        epilog=__doc__.split("\n\n")[1].replace("\n", " "),  # the exit codes, plain text like the rest of --help
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    check = command("check", _check, "validate every practice's configuration; exit 2 naming each wrong file")
    run = command("run", _run, "run the pipeline once: ingest, adapt, publish")
    status = command("status", _status, "list the ledger's publications")
    serve = command(
        "serve", _serve, "register the config's schedules as Prefect deployments and run them (Ctrl-C stops)"
    )
    for sub in (run, status):
        sub.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="default: %(default)s")
    serve.add_argument(
        "--config",
        type=Path,
        action="append",
        dest="configs",
        metavar="PATH",
        help="only this practice (repeatable); default: config/carecast.yaml and every config/practices/*.yaml",
    )
    check.add_argument(
        "--config",
        type=Path,
        action="append",
        dest="configs",
        metavar="PATH",
        help="only this file (repeatable); default: config/carecast.yaml and every config/practices/*.yaml",
    )
    deploy = command(
        "deploy", _deploy, "register every practice's deployments, limits and automations in a Prefect work pool"
    )
    deploy.add_argument("--pool", required=True, metavar="NAME", help="the process work pool (created when missing)")
    deploy.add_argument("--config", type=Path, action="append", dest="configs", metavar="PATH", help="as for check")
    deploy.add_argument(
        "--heartbeat",
        type=_heartbeat,
        default=30,
        metavar="SECONDS",
        help="flow-run heartbeat (≥ 30; default %(default)s)",
    )
    deploy.add_argument(
        "--crashed-after",
        type=int,
        default=90,
        metavar="SECONDS",
        help="a run silent this long is marked Crashed and reported (default %(default)s)",
    )
    practice = commands.add_parser("practice", help="add a practice", description="add a practice")
    practice_commands = practice.add_subparsers(required=True, metavar="ACTION")
    new = practice_commands.add_parser(
        "new", help="write config/practices/SLUG.yaml, a starter that passes carecast check"
    )
    new.set_defaults(handler=_practice_new)
    new.add_argument("slug", metavar="SLUG", help="lower-case letters, digits and dashes: in every name and tag")
    new.add_argument("--name", required=True, help="the practice's name")
    new.add_argument("--timezone", required=True, help="IANA zone, e.g. America/Denver")
    new.add_argument("--short-name", default="", help="the sender prefix of texts (≤ 20 characters)")
    for option in QUESTIONS:
        new.add_argument(f"--{option.replace('_', '-')}", dest=option, help=QUESTIONS[option])
    new.add_argument("--config-dir", type=Path, default=DEFAULT_CONFIG.parent, help="default: %(default)s")
    run.add_argument("--dry-run", action="store_true", help="render and preview everything, publish nothing")
    for sub in (run, serve, deploy):
        sub.add_argument(
            "--new-ledger",
            action="store_true",
            help="create the ledger even though the project holds an outbox or Prefect state of an earlier one",
        )
    run.add_argument("--channel", action="append", dest="channels", metavar="NAME", help="only this channel")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--limit", type=int, metavar="N", help="only the newest N publications")
    status.add_argument(
        "--since",
        type=_utc_moment,
        metavar="WHEN",
        help="only those since WHEN: an ISO date or time (UTC if no zone), a duration ago (2d, 36h, 90m, 1w) or "
        "today, yesterday, this week, last week",
    )
    status.add_argument("--channel", metavar="NAME", help="only this channel")
    status.add_argument("--state", choices=["claimed", "sent", "failed", "unknown"], help="only those in this state")
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
    resolve.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="default: %(default)s")

    check.add_argument("--live", action="store_true", help="also prove each configured account works, sending nothing")

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
    audience = command("audience", _audience_import, "import subscribers from a CSV file into the ledger")
    audience.add_argument("action", choices=["import"], help="import: add or update the file's subscribers")
    audience.add_argument(
        "file", type=Path, metavar="FILE", help="a CSV of subscribers with their consent (newsletter.csv, sms.csv)"
    )
    audience.add_argument("--type", dest="channel_type", choices=sorted(ADDRESS_COLUMN), help="default: the file name")
    audit = command("audit", _audit, "every message sent, skipped or suppressed, with the consent it relied on")
    audit.add_argument("--recipient", metavar="ADDR", help="one phone number (E.164) or email address")
    audit.add_argument("--since", type=_utc_moment, metavar="WHEN", help="as for status --since")
    audit.add_argument("--format", dest="form", default="table", choices=["table", "csv", "json"])
    report = command("report", _report, "did it work? sends, deliveries, clicks (people vs previews), engagement")
    report.add_argument("--since", type=_utc_moment, metavar="WHEN", help="as for status --since; default: 7 days ago")
    report.add_argument("--format", dest="form", default="table", choices=["table", "csv", "json"])
    report.add_argument("--charts", type=Path, metavar="DIR", help="also write the charts (PNG) into DIR")
    for sub in (drafts, approve, reject, release, audience, audit, report):
        sub.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="default: %(default)s")

    measure = command("measure", _measure, "measure TEXT as a channel counts it (x: weighted length; sms: segments)")
    measure.add_argument("--channel", required=True, choices=["x", "sms"])
    measure.add_argument("text", metavar="TEXT", help="the text, or - to read standard input")

    webhooks = command(
        "webhooks", _webhooks, "serve the channels' inbound endpoints (Twilio's callbacks, one-click unsubscribe, ...)"
    )
    webhooks.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="default: %(default)s")
    webhooks.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    webhooks.add_argument("--port", type=int, default=8088, help="default: %(default)s")
    webhooks.add_argument(
        "--public-url", type=_web_url, metavar="URL", help="the base URL Twilio and subscribers call, if another"
    )
    return parser


def _config_files(configs: list[Path] | None) -> list[Path]:
    """The files named, else every practice's config (raises ConfigError when there is none)."""
    files = configs or practice_files()
    if not files:
        raise ConfigError(DEFAULT_CONFIG, [("", "no config/carecast.yaml and no config/practices/*.yaml")])
    return files


def _check(args: argparse.Namespace) -> int:
    """Check each file on its own: a broken practice fails only itself, and every file's problems are listed."""
    from carecast.practice import load_settings

    worst = 0
    for file in _config_files(args.configs):
        try:
            settings = load_settings(file)
        except ConfigError as exc:
            print(f"configuration error:\n{exc}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        print(
            f"{file}: OK — {settings.practice.name} ({settings.slug}), "
            f"sources: {', '.join(settings.sources)}; channels: {', '.join(settings.channels)}"
        )
        # Where this config's state really is, resolved against the project root: no guessing from the cwd.
        print(f"  ledger: {_shown_url(settings.ledger_url())}")
        print(f"  outbox: {settings.path(settings.outbox).resolve()}")
        _audiences(settings)
        if args.live and not _verify(settings):
            worst = max(worst, EXIT_FAILED)
    return worst


def _audiences(settings: Settings) -> None:
    """Each audience's size per channel type and the rows of its files that cannot be used (they are skipped)."""
    from carecast.audiences import tally

    for name, audience in settings.audiences.items():
        counts, unusable = tally(audience, settings.base_dir)
        sizes = ", ".join(f"{count} with {ADDRESS_COLUMN[kind]}" for kind, count in sorted(counts.items()))
        print(f"  audience {name} ({audience.kind}): {sizes or 'nobody'}; {len(unusable)} row(s) cannot be used")
        for problem in unusable[:10]:
            print(f"    {problem}")


def _verify(settings: Settings) -> bool:
    """Prove each channel's account works, sending nothing; False when one does not."""
    use_project_prefect(settings.file)
    import carecast_flows.secrets  # noqa: F401  credentials named as Prefect Secret blocks are read through Prefect
    from carecast.pipeline import make_channel

    ok = True
    for name in settings.channels:
        try:
            print(f"{name}: {make_channel(settings, name).verify()}")
        except CareCastError as exc:
            ok = False
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
    return ok


def _practice_new(args: argparse.Namespace) -> int:
    given = {option: getattr(args, option) for option in QUESTIONS if getattr(args, option) is not None}
    values = StarterValues(name=args.name, timezone=args.timezone, short_name=args.short_name, **given)
    ask = _ask if sys.stdin.isatty() else None
    if args.config_dir.exists() and not args.config_dir.is_dir():
        _usage_error(f"--config-dir {args.config_dir}: not a folder (the folder holding carecast.yaml, e.g. config)")
    file = write_starter(args.config_dir, args.slug, values, set(QUESTIONS) - set(given), ask)
    print(f"{file}: written; check it with: carecast check --config {file}")
    return 0


def _ask(question: str, default: str) -> str:
    return input(f"{question} [{default}]: ").strip() or default


class _LedgerSection(ChannelSettings):
    """A channel section as the commands that only read or settle the ledger see it: the keys every channel has,
    checked; the channel's own keys (its credentials among them) dropped unread, so its plugin is never imported.
    ``carecast check`` and ``run`` validate the whole section."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def _open_ledger(config: Path, *, create: bool = False) -> tuple[Settings, Ledger]:
    """The config's settings (channel sections as :class:`_LedgerSection`) and its ledger; raises ConfigError as
    ``load_settings`` does for everything but a channel's own keys, and (unless ``create``) when the ledger does not
    exist yet, rather than making an empty one that shows nothing; LedgerError when it cannot be opened."""
    settings = parse_settings(config, lambda kind: _LedgerSection)
    if not create:
        refuse_missing_ledger(settings.file, settings.ledger_url())
    return settings, open_ledger(settings)


def _shown_url(url: str) -> str:
    """A ledger URL as it may be printed: its password, if any, masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _drafts(args: argparse.Namespace) -> int:
    """List drafts with why each waits, is held or was refused (the ledger's reason)."""
    _, ledger = _open_ledger(args.config)
    try:
        stored = ledger.drafts(states=None if args.state == "all" else [args.state])
    finally:
        ledger.close()
    rows = [[d.id, d.channel, d.state, _clip(_gist(d.draft) or "(no text)", 50), _why(d)] for d in stored]
    if rows:
        _table(["id", "channel", "state", "text", "why"], rows)
    else:
        print(f"no {args.state} drafts")
    return 0


def _why(stored: StoredDraft) -> str:
    """Why a draft is in its state, in a line: the ledger's reason, or what waiting means."""
    if stored.state == "pending":
        return "waiting for approval: carecast approve ID, or the review deployment's form"
    return _clip((stored.reason or "").replace("\n", " "), 90)


def _gist(draft: Draft) -> str:
    return draft.subject or draft.text.replace("\n", " ")


def _approve(args: argparse.Namespace) -> int:
    return _decide(args, "approved", None)


def _reject(args: argparse.Namespace) -> int:
    return _decide(args, "rejected", args.reason)


@contextlib.contextmanager
def _ledger_of(settings: Settings) -> Iterator[Ledger]:
    """The ledger of ``settings``, closed after use; raises LedgerError when it cannot be opened."""
    ledger = open_ledger(settings)
    try:
        yield ledger
    finally:
        ledger.close()


@contextlib.contextmanager
def _ledger(config: Path) -> Iterator[tuple[Settings, Ledger]]:
    """The settings and their ledger, closed after use."""
    settings, ledger = _open_ledger(config)
    try:
        yield settings, ledger
    finally:
        ledger.close()


def _decide(args: argparse.Namespace, state: DraftState, reason: str | None) -> int:
    with _ledger(args.config) as (_, ledger):
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
        _usage_error(f"no draft {draft_id}; drafts waiting: {', '.join(waiting) or 'none'} (carecast drafts)")


def _usage_error(message: str) -> NoReturn:
    """Say what is wrong with the command line and exit 2, as argparse does."""
    print(f"carecast: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _release(args: argparse.Namespace) -> int:
    with _ledger(args.config) as (_, ledger):
        _known_draft(ledger, args.draft_id)
        ledger.release(args.draft_id, args.reason, args.by)
    print(f"draft {args.draft_id}: released by {args.by} and approved")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from carecast.audit import audit, render

    with _ledger(args.config) as (settings, ledger):
        print(render(audit(settings, ledger, args.recipient, args.since), args.form))
    return 0


def _report(args: argparse.Namespace) -> int:
    from carecast.report import weekly

    with _ledger(args.config) as (settings, ledger):
        print(weekly(settings, ledger, args.since, args.form, args.charts))
    return 0


def _audience_import(args: argparse.Namespace) -> int:
    channel_type = args.channel_type or args.file.stem
    if channel_type not in ADDRESS_COLUMN:
        raise ConfigError(args.file, [("", f"--type {' or '.join(sorted(ADDRESS_COLUMN))} (not in the file name)")])
    audience = read_audience(args.file, channel_type)
    _, ledger = _open_ledger(args.config, create=True)  # subscribers may well come before the first run
    try:
        added, updated = ledger.save_subscribers(channel_type, audience.subscribers)
    finally:
        ledger.close()
    print(f"{args.file}: {added} added, {updated} updated, {len(audience.rejected)} problem(s) in rejected rows")
    if audience.rejected:
        _table(["row", "why"], [[where, why] for where, why in audience.rejected])
    return EXIT_FAILED if audience.rejected else 0


def _measure(args: argparse.Namespace) -> int:
    from carecast.text import sms_measure, x_measure

    text = sys.stdin.read() if args.text == "-" else args.text
    if args.text == "-" and text.endswith("\n"):
        text = text[:-1]  # the newline that ends the piped line is not part of the post
    if args.channel == "x":
        x = x_measure(text)
        result: dict[str, Any] = {"channel": "x", "weighted_length": x.weighted_length, "valid": x.valid}
    else:
        sms = sms_measure(text)
        result = {"channel": "sms", "encoding": sms.encoding, "segments": sms.segments}
    print(json.dumps(result))
    return 0


def _status(args: argparse.Namespace) -> int:
    settings, ledger = _open_ledger(args.config)
    shown = 0
    if args.channel is not None and args.channel not in settings.channels:
        ledger.close()
        _usage_error(f"--channel {args.channel}: not a configured channel; choose from {', '.join(settings.channels)}")
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
        for number, page in enumerate(batched(ledger.status_rows(**chosen), STATUS_PAGE)):
            _table(headers, page, header=number == 0)
            shown += len(page)
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
        print(f"no publications{' match' if filtered else ''} in the ledger at {_shown_url(settings.ledger_url())}")
    if left:
        print(
            "\nUnknown: check with the provider, then carecast resolve ID [--recipient ADDR|--part N] "
            "--sent|--resend|--drop"
        )
        _table(["id", "channel", "recipient / part", "why"], left)
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

    _, ledger = _open_ledger(args.config)
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


#: Rows ``carecast status`` aligns together: the first page prints at once, whatever the size of the ledger.
STATUS_PAGE = 1000


def _utc_moment(text: str) -> datetime:
    """``--since`` from the command line, against the clock now (:func:`parse_since`); raises
    argparse.ArgumentTypeError (argparse reports it, exit 2) when it is none of what it may be."""
    from carecast.model import now_utc
    from carecast.when import parse_since

    try:
        return parse_since(text, now_utc())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _run(args: argparse.Namespace) -> int:
    # The run's own Prefect API, when it needs one, boots first: the slowest step, it goes on while the practice
    # is checked and Prefect loads (a wrong config ends the command, and the server with it).
    use_project_prefect(args.config)
    earlier = earlier_prefect(args.config)  # looked at before the run's own Prefect server makes its database
    refuse_full_disk(Path(os.environ["PREFECT_HOME"]))
    api_ready = _prefect_api()
    from carecast.practice import load_settings

    settings: Settings = load_settings(args.config)
    if (ledger_file := sqlite_path(settings.ledger_url())) is not None:
        refuse_full_disk(ledger_file)
    for name in args.channels or ():
        if name not in settings.channels:
            _usage_error(f"--channel {name}: not a configured channel; choose from {', '.join(settings.channels)}")
    if not args.new_ledger:
        _refuse_new_ledger(settings, earlier)
    # Prefect loads slowly (and reads prefect.toml): only for the commands that run.
    from carecast_flows.pipeline import run_here

    api_ready()
    state = run_here(str(args.config), dry_run=args.dry_run, channels=args.channels)
    # A run with failures ends Failed (so it notifies) and carries its outcomes all the same; one that raised
    # carries the exception instead.
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    code = _summarise(result, dry_run=args.dry_run)
    return code if args.dry_run else max(code, _unsettled(settings, args.channels))


def _unsettled(settings: Settings, channels: list[str] | None) -> int:
    """Name every publication (of ``channels``, when given) still ``unknown``, left by this run or an earlier one,
    and what settles it; EXIT_FAILED when there is one, so a run never looks done while a send is in doubt."""
    with _ledger_of(settings) as ledger:
        # A fan-out's publication stays sent or failed while some of its recipients are unknown.
        ids = sorted(ledger.unknown_deliveries())
        records = [*ledger.stream_publications(state="unknown"), *(ledger.publications(ids=ids) if ids else [])]
    doubtful = {record.id: record.channel for record in records if channels is None or record.channel in channels}
    if not doubtful:
        return 0
    print(
        f"\nStill unknown: {len(doubtful)} publication(s) whose send was cut off "
        f"({', '.join(f'{number} {channel}' for number, channel in sorted(doubtful.items()))}). Check each with the "
        "provider (carecast status lists them), then carecast resolve ID --sent|--resend|--drop."
    )
    return EXIT_FAILED


def _refuse_new_ledger(settings: Settings, earlier_prefect: Path | None) -> None:
    """Raise ConfigError when the run would create a new ledger beside an earlier one's outbox or Prefect state."""
    refuse_new_ledger(settings.file, settings.ledger_url(), settings.path(settings.outbox), earlier_prefect)


def _prefect_api() -> Callable[[], object]:
    """Start the run's own temporary Prefect API (flows.server) unless one is configured or Prefect is loaded
    already (a test harness or a program embedding CareCast decided); return what waits until it answers (raising
    RuntimeError when it does not). Call after :func:`carecast.project.use_project_prefect`."""
    if "prefect" in sys.modules or os.environ.get("PREFECT_API_URL"):
        return lambda: None
    from carecast_flows.server import start_temporary_api

    return start_temporary_api(Path(os.environ["PREFECT_HOME"]))


def _serve(args: argparse.Namespace) -> int:
    """Serve every practice (or those named) from this one process: their deployments, calendars, automations."""
    from carecast.practice import load_settings

    files = _config_files(args.configs)
    for file in files:
        settings = load_settings(file)  # a wrong config stops here, before Prefect loads
        if not args.new_ledger:
            _refuse_new_ledger(settings, earlier_prefect(file))
    use_project_prefect(files[0])
    # Prefect loads slowly and reads prefect.toml: only for commands that run
    from carecast_flows.deployments import serve

    serve(files)
    return 0


def _deploy(args: argparse.Namespace) -> int:
    """Deploy every practice whose file is valid; a broken file is named and left out (exit 2), the rest deploy."""
    if args.crashed_after <= args.heartbeat:
        raise ConfigError("--crashed-after", [("", f"more seconds than --heartbeat ({args.heartbeat})")])
    from carecast.practice import load_settings

    good = []
    for file in _config_files(args.configs):
        try:
            settings = load_settings(file)
            if not args.new_ledger:
                _refuse_new_ledger(settings, earlier_prefect(file))
        except ConfigError as exc:
            print(f"configuration error, not deployed:\n{exc}", file=sys.stderr)
            continue
        good.append(file)
    if good:
        use_project_prefect(good[0])
        from carecast_flows.deployments import deploy  # Prefect loads slowly and reads prefect.toml: only when it runs

        for line in deploy(good, args.pool, heartbeat=args.heartbeat, crashed_after=args.crashed_after):
            print(line)
    return 0 if len(good) == len(_config_files(args.configs)) else EXIT_USAGE


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


def _heartbeat(value: str) -> int:
    seconds = int(value)
    if seconds < 30:
        raise argparse.ArgumentTypeError(f"at least 30 seconds (Prefect's shortest heartbeat), not {value}")
    return seconds


def _web_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"an http(s) base URL such as https://hooks.example.com, not {value!r}")
    return value


def _summarise(result: dict[str, Any], *, dry_run: bool) -> int:
    failed = False
    print("\nSources")
    rows = []
    for report in result["sources"]:
        if report["error"]:
            failed = True
            state = f"FAILED: {report['error']}"
        elif report["not_modified"]:
            state = "not modified"
        else:
            state = f"{len(report['new'])} new, {len(report['edited'])} edited, {report['unchanged']} unchanged"
        if report["failures"]:
            failed = True
            state += "; FAILED: " + "; ".join(report["failures"])
        rows.append([report["source"], state])
    _table(["source", "result"], rows)
    print("\nDry run: nothing was published" if dry_run else "\nPublications")
    rows = []
    skipped: dict[str, list[dict[str, Any]]] = {}
    for outcome in result["outcomes"]:
        failed |= outcome["state"] in NOT_DONE
        if outcome["state"] == "skipped":
            skipped.setdefault(outcome["channel"], []).append(outcome)
            continue
        rows.append([_clip(outcome["title"], 48), outcome["channel"], outcome["state"], _shown(outcome["detail"])])
    for channel, passed_over in skipped.items():
        # A first run meets a whole backlog: one line per channel says what was passed over and why.
        rows.append([f"{len(passed_over)} older item(s)", channel, "skipped", passed_over[0]["detail"]])
    # A channel whose every draft the rules refused published nothing it was due to.
    states: dict[str, set[str]] = {}
    for outcome in result["outcomes"]:
        states.setdefault(outcome["channel"], set()).add(outcome["state"])
    failed |= any("rejected" in seen and "published" not in seen for seen in states.values())
    if rows:
        _table(["item", "channel", "state", "where / why"], rows)
    else:
        print("nothing new to publish")
    if dry_run:
        for outcome in result["outcomes"]:
            if outcome["preview"]:
                print(f"\n--- {outcome['channel']}: {outcome['title']}\n{outcome['preview']}")
    return EXIT_FAILED if failed else 0


def _shown(detail: str) -> str:
    """An outbox path relative to the working folder, as staff would type it; anything else as it is."""
    path = Path(detail)
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        return str(path.relative_to(Path.cwd()))
    return detail


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(headers: list[str], rows: Sequence[Sequence[Any]], *, header: bool = True) -> None:
    cells = [list(map(str, row)) for row in rows]
    columns = list(zip(*cells, strict=True)) or [()] * len(headers)
    widths = [max([len(header), *map(len, column)]) for header, column in zip(headers, columns, strict=True)]
    lines = [headers, ["-" * width for width in widths], *cells] if header else cells
    if not lines:
        return
    # One write per table (a page of status is a thousand lines), not one print per line.
    print("\n".join("  ".join(map(str.ljust, line, widths)).rstrip() for line in lines))


if __name__ == "__main__":
    console()
