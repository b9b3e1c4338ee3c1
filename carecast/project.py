"""Where a practice's files and state live, whatever folder a command, a worker or a test is started from.

The project root is found once per config file: the config's folder when it holds a ``prefect.toml`` or
``pyproject.toml``, else the folder above it (``config/carecast.yaml`` lives in ``<project>/config``). A relative
SQLite ledger (``sqlite:///.carecast/ledger.db``) and Prefect's state (``.carecast/prefect``) live under it; the
paths a config names (outbox, templates, audience, sources' files) are relative to the config's folder, made
absolute when the file is read. Nothing is resolved against the working directory. Prefect is given the project's
settings too (:func:`use_project_prefect`: its ``prefect.toml``, which Prefect itself would only read from the
working folder).

A run that is about to create a new ledger while the project already holds an outbox with files in it, or Prefect
state, from an earlier ledger is refused (:func:`refuse_new_ledger`): that is the signature of a config opened
from another folder, or a ledger URL edited by mistake, and a new ledger would send every post again.
"""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from carecast.errors import ConfigError, LedgerError, StorageError

#: The folder of the config folder holding one file per practice (``config/practices/<slug>.yaml``).
PRACTICES_DIR = "practices"
#: The project's Prefect settings: Prefect keeps its home in ``.carecast/prefect``; its parent folder must exist.
PREFECT_TOML = "prefect.toml"
#: Files that mark a project's root folder (see :func:`project_root`).
MARKERS = ("prefect.toml", "pyproject.toml")
#: CareCast's own state (SQLite ledger, Prefect's home, the sample outbox) under the project root.
STATE_DIR = ".carecast"
SQLITE = "sqlite:///"
MEMORY = "sqlite:///:memory:"
#: The room a run needs where its state is written: Prefect's database migrates and records every state of the run
#: and the ledger its claims. With less, a run ends midway in a crash that names nothing (its server aborts).
MIN_FREE_BYTES = 50 * 2**20


def project_root(config_file: Path | str) -> Path:
    """The absolute project root of ``config_file`` (see the module's description); the file need not exist.

    The config folder of a practice file (``config/practices/<slug>.yaml``) is ``config``, as for the single one.
    Only the config folder and the one above it are looked at: a project may well sit inside another folder that
    has a ``pyproject.toml`` (a test's temporary folder inside the repository, a home folder), and that folder's
    ledger is not this project's.
    """
    folder = Path(config_file).resolve().parent
    config_folder = folder.parent if folder.name == PRACTICES_DIR else folder
    for candidate in (config_folder, config_folder.parent):
        if any((candidate / marker).is_file() for marker in MARKERS):
            return candidate
    return config_folder.parent


def use_project_prefect(config: Path) -> None:
    """Give Prefect the settings of the config's project, whatever folder the command runs from.

    Prefect reads ``prefect.toml`` from the working folder only; the project's (in :func:`project_root`) is read,
    and each of its settings is set as the environment variable Prefect reads (``[server] analytics_enabled`` as
    ``PREFECT_SERVER_ANALYTICS_ENABLED``; ``home`` relative to the file), unless the environment sets it already.
    Without a ``prefect.toml``, Prefect's home is the project's ``.carecast/prefect`` (never ~/.prefect). Must run
    before Prefect loads. Raises ConfigError when the prefect.toml found is not TOML.
    """
    for name, value in project_prefect(config):
        os.environ.setdefault(name, value)
    Path(os.environ["PREFECT_HOME"]).parent.mkdir(parents=True, exist_ok=True)


def project_prefect(config: Path) -> list[tuple[str, str]]:
    """The Prefect settings of the config's project (:func:`project_root`) as environment
    variables: its ``prefect.toml``'s (``home`` made absolute), else only ``PREFECT_HOME`` in ``.carecast/prefect``.

    Raises ConfigError when the project's prefect.toml is not TOML.
    """
    root = project_root(config)
    found = root / PREFECT_TOML
    if not found.is_file():
        return [("PREFECT_HOME", str(root / STATE_DIR / "prefect"))]
    try:
        table = tomllib.loads(found.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(found, [("", f"is not valid TOML: {exc}")]) from exc
    return [
        (name, str(root / value) if name == "PREFECT_HOME" else value)
        for name, value in _environment_names(table, "PREFECT")
    ]


def earlier_prefect(config: Path) -> Path | None:
    """The project's Prefect home (whatever this process's environment says) when earlier runs left a database
    there, else None."""
    settings = dict(project_prefect(config))
    home = Path(settings.get("PREFECT_HOME", str(project_root(config) / STATE_DIR / "prefect")))
    return home if (home / "prefect.db").is_file() else None


def _environment_names(table: dict[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    """``(PREFIX_SECTION_KEY, value)`` for every setting of a TOML table, as Prefect's environment variables name
    them; booleans as true/false, lists and tables of values as JSON."""
    for key, value in table.items():
        name = f"{prefix}_{key.upper()}"
        if isinstance(value, dict):
            yield from _environment_names(value, name)
        elif isinstance(value, bool):
            yield name, str(value).lower()
        else:
            yield name, value if isinstance(value, str) else json.dumps(value, default=str)


def resolve_ledger_url(url: str, root: Path) -> str:
    """``url`` with a relative SQLite path made absolute under ``root``; any other URL unchanged."""
    if url.startswith(SQLITE) and not url.startswith(SQLITE + "/") and url != MEMORY:
        return SQLITE + str((root / url.removeprefix(SQLITE)).resolve())
    return url


def ledger_exists(url: str) -> bool:
    """Whether the ledger at ``url`` (as :meth:`Settings.ledger_url` gives it) was made already: a SQLite file
    that is not empty, or a PostgreSQL schema holding the ledger's tables.

    Raises LedgerError when a database server cannot be asked.
    """
    if url == MEMORY:
        return False
    if url.startswith(SQLITE):
        file = Path(url.removeprefix(SQLITE))
        return file.is_file() and file.stat().st_size > 0
    from carecast.ledger.migrate import ledger_schema  # the ledger package imports the config, which imports this

    try:
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                return "publications" in inspect(connection).get_table_names(schema=ledger_schema(engine))
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot open the ledger: {exc}") from exc


def earlier_state(outbox: Path, prefect_home: Path | None) -> list[str]:
    """What in the project shows that something ran before: an outbox holding files, Prefect's database."""
    found = []
    if outbox.is_dir() and any(path.is_file() for path in outbox.rglob("*")):
        found.append(f"the outbox {outbox} holds what was sent")
    if prefect_home is not None and (prefect_home / "prefect.db").is_file():
        found.append(f"Prefect's state {prefect_home} holds earlier runs")
    return found


def refuse_new_ledger(config_file: Path, url: str, outbox: Path, prefect_home: Path | None) -> None:
    """Refuse to create the ledger at ``url`` when the project holds state of an earlier one.

    Raises ConfigError (key ``ledger.url``) saying where the new ledger would be, what was found, and what to do;
    LedgerError when a database server cannot be asked.
    """
    if ledger_exists(url):
        return
    found = earlier_state(outbox, prefect_home)
    if found:
        where = url.removeprefix(SQLITE) if url.startswith(SQLITE) else "this database"
        raise ConfigError(
            config_file,
            [
                (
                    "ledger.url",
                    f"a new, empty ledger would be created at {where}, but {' and '.join(found)}: a new ledger "
                    "would publish everything again. Point ledger.url at the existing ledger (a relative SQLite "
                    "path is relative to the project root), or pass --new-ledger to start a new one on purpose",
                )
            ],
        )


def refuse_missing_ledger(config_file: Path, url: str) -> None:
    """For the commands that only read or settle the ledger: raise ConfigError (key ``ledger.url``) when it does
    not exist yet, instead of creating an empty one and showing nothing; LedgerError when a server cannot be asked.
    """
    if not ledger_exists(url):
        where = url.removeprefix(SQLITE) if url.startswith(SQLITE) else "this database"
        raise ConfigError(
            config_file,
            [("ledger.url", f"no ledger at {where} yet: nothing has run with this config (carecast run makes it)")],
        )


def refuse_full_disk(*paths: Path) -> None:
    """Raise StorageError when the disk holding one of ``paths`` (a file or folder, or where it will be made) has
    less than :data:`MIN_FREE_BYTES` free."""
    for path in paths:
        existing = next(folder for folder in (path, *path.parents) if folder.exists())
        free = shutil.disk_usage(existing).free
        if free < MIN_FREE_BYTES:
            raise StorageError(path, free)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite ledger URL (already resolved), None for an in-memory or server database."""
    return Path(url.removeprefix(SQLITE)) if url.startswith(SQLITE) and url != MEMORY else None
