"""``carecast check``, ``practice new`` and ``measure``: set a practice up and check it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from carecast.audience import ADDRESS_COLUMN
from carecast.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    AddCommand,
    config_files,
    shown_url,
    usage_error,
)
from carecast.config import DEFAULT_CONFIG, Settings
from carecast.errors import CareCastError, ConfigError
from carecast.project import (
    use_project_prefect,
)
from carecast.starter import QUESTIONS, StarterValues, write_starter


def _check(args: argparse.Namespace) -> int:
    """Check each file on its own: a broken practice fails only itself, and every file's problems are listed."""
    from carecast.practice import load_settings

    worst = 0
    for file in config_files(args.configs):
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
        print(f"  ledger: {shown_url(settings.ledger_url())}")
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
        usage_error(f"--config-dir {args.config_dir}: not a folder (the folder holding carecast.yaml, e.g. config)")
    file = write_starter(args.config_dir, args.slug, values, set(QUESTIONS) - set(given), ask)
    print(f"{file}: written; check it with: carecast check --config {file}")
    return 0


def _ask(question: str, default: str) -> str:
    return input(f"{question} [{default}]: ").strip() or default


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


def add_check(command: AddCommand) -> None:
    check = command("check", _check, "validate every practice's configuration; exit 2 naming each wrong file")
    check.add_argument(
        "--config",
        type=Path,
        action="append",
        dest="configs",
        metavar="PATH",
        help="only this file (repeatable); default: config/carecast.yaml and every config/practices/*.yaml",
    )
    check.add_argument("--live", action="store_true", help="also prove each configured account works, sending nothing")


def add_practice(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def add_measure(command: AddCommand) -> None:
    measure = command("measure", _measure, "measure TEXT as a channel counts it (x: weighted length; sms: segments)")
    measure.add_argument("--channel", required=True, choices=["x", "sms"])
    measure.add_argument("text", metavar="TEXT", help="the text, or - to read standard input")
