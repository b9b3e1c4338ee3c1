"""What every ``carecast`` command shares: exit codes, the config and ledger they open, usage errors, tables."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ConfigDict

from carecast.config import DEFAULT_CONFIG, ChannelSettings, Settings, parse_settings, practice_files
from carecast.errors import ConfigError
from carecast.ledger import (
    Ledger,
    open_ledger,
)
from carecast.project import (
    refuse_missing_ledger,
)

EXIT_FAILED = 1
EXIT_USAGE = 2
#: What adds one command to ``carecast``: its name, handler and help text; it returns the command's parser.
AddCommand = Callable[[str, Any, str], argparse.ArgumentParser]


def add_config(sub: argparse.ArgumentParser) -> None:
    """The ``--config`` of a command that works on one practice."""
    sub.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="default: %(default)s")


def add_new_ledger(sub: argparse.ArgumentParser) -> None:
    """The ``--new-ledger`` of a command that may create the ledger."""
    sub.add_argument(
        "--new-ledger",
        action="store_true",
        help="create the ledger even though the project holds an outbox or Prefect state of an earlier one",
    )


def config_files(configs: list[Path] | None) -> list[Path]:
    """The files named, else every practice's config (raises ConfigError when there is none)."""
    files = configs or practice_files()
    if not files:
        raise ConfigError(DEFAULT_CONFIG, [("", "no config/carecast.yaml and no config/practices/*.yaml")])
    return files


def usage_error(message: str) -> NoReturn:
    """Say what is wrong with the command line and exit 2, as argparse does."""
    print(f"carecast: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def utc_moment(text: str) -> datetime:
    """``--since`` from the command line, against the clock now (:func:`parse_since`); raises
    argparse.ArgumentTypeError (argparse reports it, exit 2) when it is none of what it may be."""
    from carecast.model import now_utc
    from carecast.when import parse_since

    try:
        return parse_since(text, now_utc())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


class _LedgerSection(ChannelSettings):
    """A channel section as the commands that only read or settle the ledger see it: the keys every channel has,
    checked; the channel's own keys (its credentials among them) dropped unread, so its plugin is never imported.
    ``carecast check`` and ``run`` validate the whole section."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def open_config_ledger(config: Path, *, create: bool = False) -> tuple[Settings, Ledger]:
    """The config's settings (channel sections as :class:`_LedgerSection`) and its ledger; raises ConfigError as
    ``load_settings`` does for everything but a channel's own keys, and (unless ``create``) when the ledger does not
    exist yet, rather than making an empty one that shows nothing; LedgerError when it cannot be opened."""
    settings = parse_settings(config, lambda kind: _LedgerSection)
    if not create:
        refuse_missing_ledger(settings.file, settings.ledger_url())
    return settings, open_ledger(settings)


@contextlib.contextmanager
def ledger_of(settings: Settings) -> Iterator[Ledger]:
    """The ledger of ``settings``, closed after use; raises LedgerError when it cannot be opened."""
    ledger = open_ledger(settings)
    try:
        yield ledger
    finally:
        ledger.close()


@contextlib.contextmanager
def config_ledger(config: Path) -> Iterator[tuple[Settings, Ledger]]:
    """The settings and their ledger, closed after use."""
    settings, ledger = open_config_ledger(config)
    try:
        yield settings, ledger
    finally:
        ledger.close()


def shown_url(url: str) -> str:
    """A ledger URL as it may be printed: its password, if any, masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: list[str], rows: Sequence[Sequence[Any]], *, header: bool = True) -> None:
    """Print ``rows`` under ``headers`` (or without them), each column as wide as its widest cell, in one write
    (a page of status is a thousand lines): a line per row by one ``%`` format built per table, no Python work per
    cell. Raises ValueError when a row has more or fewer cells than there are headers."""
    columns = list(zip(*rows, strict=True)) or [()] * len(headers)
    widths = [max([len(header), *map(len, map(str, column))]) for header, column in zip(headers, columns, strict=True)]
    if not rows and not header:
        return
    line = "  ".join(f"%-{width}s" for width in widths).__mod__
    heading = [line(tuple(headers)), line(tuple("-" * width for width in widths))] if header else []
    print("\n".join(map(str.rstrip, chain(heading, map(line, map(tuple, rows))))))
