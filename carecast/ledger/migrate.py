"""Bring a ledger's schema to the newest revision (Alembic, ``migrations/``), safely when processes race to open it.

Several runs and workers open the same ledger at once, a fresh one included: the upgrade runs in one transaction
that holds the database's own lock first (PostgreSQL: an advisory lock; SQLite: ``BEGIN IMMEDIATE``, which the
store emits for every transaction), so the first process migrates and the others find the schema current. A ledger
made by ``create_all`` before migrations existed has the tables but no ``alembic_version``: it is stamped with the
baseline it equals (or the newest revision, when it has every table of today's schema), then upgraded in place.
"""

from __future__ import annotations

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
#: PostgreSQL advisory lock key held while the schema is upgraded ("carecast" in ASCII, as a bigint).
ADVISORY_LOCK = 0x6361726563617374


def upgrade(engine: Engine) -> None:
    """Create or upgrade the ledger's tables to the newest revision; a no-op, without any lock, when current.

    Raises SQLAlchemyError (or Alembic's CommandError for a ledger newer than this CareCast) when it cannot.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current == head:
        return
    with engine.begin() as connection:
        _lock(connection)
        config.attributes["connection"] = connection
        tables = set(inspect(connection).get_table_names())
        if "alembic_version" not in tables and "publications" in tables:
            # Made by create_all: the schema of its day, the newest when it has every table of today's.
            command.stamp(config, "head" if set(Base.metadata.tables) <= tables else BASELINE)
        command.upgrade(config, "head")


def _lock(connection: Connection) -> None:
    """Hold the database's lock until the transaction ends, so only one process migrates at a time."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    # SQLite: the transaction began IMMEDIATE (see store.py), which already holds the write lock.
