"""Bring a ledger's schema to the newest revision (Alembic, ``migrations/``), safely when processes race to open it.

Several runs and workers open the same ledger at once, a fresh one included: the upgrade runs in one transaction
that holds the database's own lock first (PostgreSQL: an advisory lock; SQLite: ``BEGIN IMMEDIATE``, which the
store emits for every transaction), so the first process migrates and the others find the schema current. A ledger
made by ``create_all`` before migrations existed has the tables but no ``alembic_version``: it is stamped with the
revision it equals (the baseline, the PHI holds' when it has every table, the newest when it has every column of
today's schema), then upgraded in place.

A practice among many on one PostgreSQL database keeps its ledger in a schema of its own (``carecast_<slug>``, the
first schema of the URL's ``search_path``, see ``Settings.ledger_url``): it is created when missing, its
``alembic_version`` lives in it, and the advisory lock is that schema's, so practices upgrade independently.
"""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine

from carecast.ledger.schema import Base

MIGRATIONS = Path(__file__).with_name("migrations")
#: The revision a ledger made by ``create_all`` (before Alembic) is.
BASELINE = "0001_baseline"
#: The revision of a ledger made by ``create_all`` with every table but before items had entry fingerprints.
HOLDS_TOKENS = "0002_holds_tokens"
#: The revision of a ledger made by ``create_all`` with entry fingerprints: none made one with the lookup indexes.
ENTRY_FINGERPRINTS = "0003_entry_fingerprints"
#: Tables added by a migration after create_all made ledgers: one made without them is still of an older revision.
MIGRATED_TABLES = frozenset({"short_links", "clicks", "metrics", "publication_audiences"})
#: PostgreSQL advisory lock key held while the schema is upgraded ("carecast" in ASCII, as a bigint).
ADVISORY_LOCK = 0x6361726563617374
#: The schema a PostgreSQL URL puts first on its search path (``?options=-csearch_path%3Dname``).
_SEARCH_PATH = re.compile(r"-csearch_path=([a-z0-9_]+)")


def upgrade(engine: Engine) -> None:
    """Create or upgrade the ledger's tables to the newest revision; a no-op, without any lock, when current.

    Raises SQLAlchemyError (or Alembic's CommandError for a ledger newer than this CareCast) when it cannot.
    """
    schema = ledger_schema(engine)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["schema"] = schema
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection, opts={"version_table_schema": schema}).get_current_revision()
    if current == head:
        return
    with engine.begin() as connection:
        _lock(connection, schema)
        if schema is not None:
            # Under the schema's lock, so two processes opening a new practice at once do not both create it.
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        config.attributes["connection"] = connection
        tables = set(inspect(connection).get_table_names(schema=schema))
        if "alembic_version" not in tables and "publications" in tables:
            # Made by create_all: stamped with the schema of its day, then upgraded.
            command.stamp(config, _made_as(connection, schema, tables))
        command.upgrade(config, "head")


def _made_as(connection: Connection, schema: str | None, tables: set[str]) -> str:
    """The revision a ledger made by ``create_all`` is: the entry fingerprints' when its items have them, the PHI
    holds' when it has every table, else the baseline."""
    if not set(Base.metadata.tables) - MIGRATED_TABLES <= tables:
        return BASELINE
    columns = {column["name"] for column in inspect(connection).get_columns("items", schema=schema)}
    return ENTRY_FINGERPRINTS if "entry_fingerprint" in columns else HOLDS_TOKENS


def ledger_schema(engine: Engine) -> str | None:
    """The PostgreSQL schema the ledger's URL puts first on its search path (one practice's among many), or None."""
    options = engine.url.query.get("options", "")
    found = _SEARCH_PATH.search(options if isinstance(options, str) else " ".join(options))
    return found[1] if engine.dialect.name == "postgresql" and found is not None else None


def _lock(connection: Connection, schema: str | None) -> None:
    """Hold the database's lock (the schema's, for a practice's schema) until the transaction ends, so only one
    process migrates it at a time."""
    if connection.dialect.name == "postgresql" and schema is None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    elif connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:schema, :key))"),
            {"schema": schema, "key": ADVISORY_LOCK},
        )
    # SQLite: the transaction began IMMEDIATE (see store.py), which already holds the write lock.
