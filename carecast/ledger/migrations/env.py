"""Alembic's entry point: migrate the connection ``carecast.ledger.migrate`` hands over (under its lock), or, for
``alembic revision --autogenerate`` by a developer, the database named by ``-x url=...``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from carecast.ledger.schema import Base


def run(connection: Connection) -> None:
    # Batch mode: SQLite can only alter a table by copying it.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


handed_over = context.config.attributes.get("connection")
if handed_over is not None:
    run(handed_over)
else:
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///.carecast/ledger.db")
    with create_engine(url).connect() as developer_connection:
        run(developer_connection)
