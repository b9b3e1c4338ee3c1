"""Create the PostgreSQL databases a many-practice setup uses, when missing: ``python -m carecast_flows.postgres URL
NAME...``.

``make serve-postgres`` runs it before ``prefect server start``: Prefect's server creates its tables, not its
database. It connects with asyncpg (Prefect's own PostgreSQL driver) to the server's ``postgres`` database.
"""

from __future__ import annotations

import asyncio
import re
import sys

import asyncpg

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


async def create_databases(url: str, names: list[str]) -> list[str]:
    """Create each database of ``names`` missing on the server at ``url`` (``postgresql://user@host:port``);
    returns those created. Raises ValueError for a name that is not a plain identifier."""
    created = []
    connection = await asyncpg.connect(f"{url.rstrip('/')}/postgres")
    try:
        for name in names:
            if not _NAME.match(name):
                raise ValueError(f"a database name of lower-case letters, digits and _, not {name!r}")
            if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await connection.execute(f'CREATE DATABASE "{name}"')
                created.append(name)
    finally:
        await connection.close()
    return created


if __name__ == "__main__":
    for database in asyncio.run(create_databases(sys.argv[1], sys.argv[2:])):
        print(f"created database {database}")
