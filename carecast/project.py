"""Where a practice's files and state live, whatever folder a command, a worker or a test is started from.

The project root is found once per config file: the nearest folder, walking up from the file's folder, that holds
a ``prefect.toml`` or ``pyproject.toml``, else the parent of the config's folder (``config/carecast.yaml`` lives in
``<project>/config``). A relative SQLite ledger (``sqlite:///.carecast/ledger.db``) and Prefect's state
(``.carecast/prefect``) live under it; the paths a config names (outbox, templates, audience, sources' files) are
relative to the config's folder, made absolute when the file is read. Nothing is resolved against the working
directory.

A run that is about to create a new ledger while the project already holds an outbox with files in it, or Prefect
state, from an earlier ledger is refused (:func:`refuse_new_ledger`): that is the signature of a config opened
from another folder, or a ledger URL edited by mistake, and a new ledger would send every post again.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from carecast.errors import ConfigError, LedgerError

#: The folder of the config folder holding one file per practice (``config/practices/<slug>.yaml``).
PRACTICES_DIR = "practices"
#: Files that mark a project's root folder (the first found walking up from the config file wins).
MARKERS = ("prefect.toml", "pyproject.toml")
#: CareCast's own state (SQLite ledger, Prefect's home, the sample outbox) under the project root.
STATE_DIR = ".carecast"
SQLITE = "sqlite:///"
MEMORY = "sqlite:///:memory:"


def project_root(config_file: Path | str) -> Path:
    """The absolute project root of ``config_file`` (see the module's description); the file need not exist.

    The config folder of a practice file (``config/practices/<slug>.yaml``) is ``config``, as for the single one.
    """
    folder = Path(config_file).resolve().parent
    config_folder = folder.parent if folder.name == PRACTICES_DIR else folder
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).is_file() for marker in MARKERS):
            return candidate
    return config_folder.parent


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
