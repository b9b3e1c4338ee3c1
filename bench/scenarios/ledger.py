"""Ledger scenarios: ``carecast status`` and publishing one post with many publications already in the ledger,
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from bench.scenarios.base import (
    POSTGRES,
    Scenario,
)
from bench.scenarios.content import (
    long_items,
)

FILLED = {
    "items": ("id", "source", "published", "content_hash", "first_seen", "data"),
    "drafts": ("id", "channel", "account", "draft_key", "state", "body", "created_at", "updated_at", "publication_id"),
    "publications": (
        "id", "draft_id", "channel", "account", "state", "claimed_at", "finished_at", "location", "transient",
    ),
    "publication_items": ("publication_id", "item_id", "channel", "account"),
}  # fmt: skip


def publication_rows(numbers: range, account: str) -> dict[str, list[tuple[Any, ...]]]:
    """Rows for ``numbers``: an item, its approved X draft, and that draft's publication, sent long ago."""
    when = datetime(2025, 1, 1, tzinfo=UTC)
    return {
        "items": [(f"bench:{n}", "blog", when, "h", when, "{}") for n in numbers],
        "drafts": [(n + 1, "x", account, f"k{n}", "approved", "{}", when, when, n + 1) for n in numbers],
        "publications": [
            (n + 1, n + 1, "x", account, "sent", when, when, f"https://x.com/oakviewpt/status/{n}", False)
            for n in numbers
        ],
        "publication_items": [(n + 1, f"bench:{n}", "x", account) for n in numbers],
    }


def fill_publications(scenario: Scenario, count: int, account: str = "@OakviewPT", step: int = 50_000) -> None:
    """Write ``count`` sent publications straight into the scenario's migrated ledger, fast and untimed: executemany
    on SQLite, COPY on PostgreSQL (then the id sequences moved past them and the tables analysed, as a ledger in
    use would be)."""
    if scenario.dialect == "sqlite":
        # Closed before anything copies the file: the write-ahead log is folded back into it.
        with closing(sqlite3.connect(scenario.ledger_file)) as db, db:
            for start in range(0, count, step):
                for table, rows in publication_rows(range(start, min(count, start + step)), account).items():
                    columns = FILLED[table]
                    marks = ", ".join("?" * len(columns))
                    db.executemany(f"insert into {table} ({', '.join(columns)}) values ({marks})", rows)
        return
    import psycopg

    with psycopg.connect(f"{POSTGRES}/{scenario.database}") as db:
        for start in range(0, count, step):
            for table, rows in publication_rows(range(start, min(count, start + step)), account).items():
                with db.cursor().copy(f"COPY {table} ({', '.join(FILLED[table])}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        for table in ("drafts", "publications"):
            db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {max(count, 1)})".encode())
    with psycopg.connect(f"{POSTGRES}/{scenario.database}", autocommit=True) as db:
        db.execute(b"ANALYZE")


class Status(Scenario):
    """``carecast status`` with ``size`` publications in the ledger (SQLite), in a process that imports only the
    CLI (before the clock, as every scenario's imports): the peak memory is the command's own."""

    name = "status"
    unit = "publications"
    sizes: ClassVar[dict[str, int]] = {"full": 1_000_000, "default": 100_000, "quick": 20}
    baseline_says = "one SQL query, rows printed as they come"
    preload = ("carecast.cli",)

    def prepare(self, feeds: dict[str, bytes]) -> None:
        self.create_ledger()
        self.write_config({})
        self.settings_and_ledger()[1].close()
        fill_publications(self, self.size)

    def carecast(self) -> dict[str, float]:
        from carecast.cli import main

        main(["status", "--config", str(self.config_file())])
        return {}

    def baseline(self) -> dict[str, float]:
        import sys

        with sqlite3.connect(self.ledger_file) as db:
            for row in db.execute(STATUS_QUERY):
                sys.stdout.write(" | ".join(map(str, row)) + "\n")
        return {}


STATUS_QUERY = (
    "select p.id, p.channel, p.state, coalesce(p.finished_at, p.claimed_at), i.item_id, p.location"
    " from publications p join publication_items i on i.publication_id = p.id order by p.id"
)


class StatusPg(Status):
    """``status`` with the ledger on PostgreSQL (a database of the bench's own on the shared server)."""

    name = "status-pg"
    dialect = "postgresql"
    baseline_says = "one SQL query (server-side cursor), rows printed as they come"

    def baseline(self) -> dict[str, float]:
        import sys

        import psycopg

        with psycopg.connect(f"{POSTGRES}/{self.database}") as db, db.cursor(name="status") as rows:
            rows.itersize = 1000
            for row in rows.execute(STATUS_QUERY.encode()):
                sys.stdout.write(" | ".join(map(str, row)) + "\n")
        return {}


class PublishOne(Scenario):
    """Publish one new X post (to the outbox) with ``size`` publications of X already in the ledger: the cost must
    not grow with the ledger (``SCALED`` runs it at 1x and 10x)."""

    name = "publish-one"
    unit = "publications in the ledger"
    sizes: ClassVar[dict[str, int]] = {"full": 1_000_000, "default": 100_000, "quick": 20}
    baseline_says = "find the due draft, claim it, write the outbox file, record it sent (SQL)"

    def prepare(self, feeds: dict[str, bytes]) -> None:
        from carecast.pipeline import make_channel

        self.create_ledger()
        self.write_config({"channels": {"x": {"schedule": [], "late": "skip"}}})
        settings, ledger = self.settings_and_ledger()
        ledger.close()
        fill_publications(self, self.size)
        tip = "Stand up and stretch once an hour."
        item = replace(long_items(1)[0], id="bench:new", summary_text=tip, summary_html=f"<p>{tip}</p>")
        settings, ledger = self.settings_and_ledger()
        ledger.upsert_items([item])
        ledger.save_draft(make_channel(settings, "x").render([item]), settings.channels["x"].account, "approved")
        ledger.close()
        self.save_template()

    def carecast(self) -> dict[str, float]:
        return self.publish_one("x")

    def baseline(self) -> dict[str, float]:
        with self.connect() as db:
            [(draft_id, body)] = self.fetch(
                db,
                "select d.id, d.body from drafts d where d.channel = 'x' and d.state = 'approved'"
                " and not exists (select 1 from publications p where p.draft_id = d.id)",
            )
            self.fetch(
                db,
                "insert into publications (draft_id, channel, account, state, claimed_at, transient)"
                f" values ({draft_id}, 'x', '@OakviewPT', 'claimed', current_timestamp, false) returning id",
            )
            db.commit()
            (self.workdir / "outbox").mkdir(exist_ok=True)
            (self.workdir / "outbox" / "baseline.json").write_text(str(body))
            self.fetch(db, f"update publications set state = 'sent' where draft_id = {draft_id} returning id")
            db.commit()
        return {}

    def connect(self) -> Any:
        if self.dialect == "sqlite":
            return sqlite3.connect(self.ledger_file)
        import psycopg

        return psycopg.connect(f"{POSTGRES}/{self.database}")

    @staticmethod
    def fetch(db: Any, query: str) -> list[Any]:
        return list(db.execute(query.encode() if not isinstance(db, sqlite3.Connection) else query).fetchall())


class PublishOnePg(PublishOne):
    """``publish-one`` with the ledger on PostgreSQL."""

    name = "publish-one-pg"
    dialect = "postgresql"
