"""What every benchmark scenario shares: the local servers' addresses, test secrets, and :class:`Scenario`, the
piece of work timed on both sides.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[2]
#: Sends claimed (and results recorded) per transaction, by the baselines and by CareCast (``ledger.delivery_chunk``,
#: 1 by default): both sides trade the same crash exposure (up to this many left unknown) for speed.
CHUNK = 500
#: Test values of the local servers, never real secrets (the X server's defaults: ``tests.providers.xapi``).
X_KEYS = {
    "consumer_key": "test-consumer-key",
    "consumer_secret": "test-consumer-secret",
    "access_token": "1000000001-test-access-token",
    "access_token_secret": "test-access-token-secret",
}
SMTP_USER, SMTP_PASSWORD = "carecast", "bench-smtp-password"
UNSUBSCRIBE_SECRET = "bench-unsubscribe-secret"
#: Monday 2026-02-02 17:00 UTC: 11:00 in Chicago, inside every recipient's quiet-hours window.
OPEN = datetime(2026, 2, 2, 17, 0, tzinfo=UTC)
SECRETS_ENV = {
    "BENCH_SMTP_PASSWORD": SMTP_PASSWORD,
    "BENCH_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET,
    "BENCH_TWILIO_TOKEN": "0123456789abcdef0123456789abcdef",
    **{f"BENCH_X_{name.upper()}": value for name, value in X_KEYS.items()},
}

#: The shared PostgreSQL server (trust, user postgres): a ``-pg`` scenario makes a database of its own on it and
#: drops it when done.
POSTGRES = os.environ.get("CARECAST_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")

SENTENCES = (
    "Sitting all day stiffens the hips and the lower back.",
    "Five short stretches, ten minutes in all, undo most of it.",
    "Start with a seated hamstring stretch and hold it for thirty seconds.",
    "Then roll your shoulders back slowly ten times, breathing out each time.",
    "A standing hip flexor stretch comes next: one foot forward, the back knee soft.",
    "Finish with a chin tuck to ease the neck after hours at a screen.",
    "Ask your physical therapist which ones suit your own recovery.",
)


@dataclass(frozen=True)
class Servers:
    """Where the parent's local servers listen (127.0.0.1 only)."""

    smtp_port: int
    twilio_url: str
    twilio_sid: str
    feed_url: str
    x_url: str


class Scenario(ABC):
    """One piece of work, timed on both sides. ``size`` is its main count (feeds, items, recipients, rows)."""

    name: ClassVar[str]
    unit: ClassVar[str]
    sizes: ClassVar[dict[str, int]]  # full, default, quick
    baseline_says: ClassVar[str]
    #: The local Twilio server's limit for this scenario (answers 429 beyond it); None: no limit.
    twilio_per_second: ClassVar[float | None] = None
    #: The local X server's limit for this scenario: posts per window of seconds (429 beyond); None: X's own.
    x_posts_per_window: ClassVar[tuple[int, int] | None] = None
    #: What the baseline side imports before its clock starts (``bench.worker.PRELOAD``): CareCast's own modules
    #: when the baseline is CareCast itself at another size.
    baseline_imports: ClassVar[str] = "baseline"
    #: A run that ``prepare`` timed to compare CareCast's with (what it was, seconds), shown in the notes.
    reference: tuple[str, float] | None = None
    #: Sends claimed (and results recorded) per transaction on both sides (CareCast's ``ledger.delivery_chunk``).
    delivery_chunk: ClassVar[int] = CHUNK
    #: Where the ledger lives: a SQLite file in the workdir, or a PostgreSQL database of the scenario's own.
    dialect: ClassVar[str] = "sqlite"
    #: What the CareCast side imports before the clock starts (None: the worker's usual set).
    preload: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, size: int, workdir: Path, servers: Servers) -> None:
        self.size = size
        self.workdir = workdir
        self.servers = servers

    @property
    def ledger_file(self) -> Path:
        return self.workdir / "ledger.db"

    @property
    def template_file(self) -> Path:
        return self.workdir / "ledger.template.db"

    @property
    def database(self) -> str:
        """The PostgreSQL database of a ``postgresql`` scenario, named after its workdir (unique to the run)."""
        return "carecast_bench_" + hashlib.sha256(str(self.workdir).encode()).hexdigest()[:12]

    @property
    def ledger_url(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{self.ledger_file}"
        return f"{POSTGRES.replace('postgresql://', 'postgresql+psycopg://', 1)}/{self.database}"

    @abstractmethod
    def prepare(self, feeds: dict[str, bytes]) -> None:
        """Once, in the parent: write the config and the data both sides start from (feeds go to the feed server)."""

    def fresh(self) -> None:
        """Before each run, untimed: every run starts from the prepared ledger."""
        if self.dialect == "postgresql":
            if self.template_file.exists():  # the marker save_template left: the database was copied
                admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
                admin(f'CREATE DATABASE "{self.database}" TEMPLATE "{self.database}_t"')
        elif self.template_file.exists():
            remove_database(self.ledger_file)
            shutil.copyfile(self.template_file, self.ledger_file)
            os.sync()  # else the timed run's first commit pays for writing out the copy (seconds at 1M rows)
        remove_database(self.workdir / "baseline.db")
        shutil.rmtree(self.workdir / "outbox", ignore_errors=True)

    @abstractmethod
    def carecast(self) -> dict[str, float]:
        """Do the work through CareCast; return extra measures (e.g. seconds to the first line printed)."""

    @abstractmethod
    def baseline(self) -> dict[str, float]:
        """Do the same work the simplest honest way; return extra measures."""

    # -- helpers both sides use ---------------------------------------------------------------------------------

    def create_ledger(self) -> None:
        """A ``postgresql`` scenario's empty database (the first open migrates it); nothing for SQLite."""
        if self.dialect == "postgresql":
            admin(f'CREATE DATABASE "{self.database}"')

    def cleanup(self) -> None:
        """Once, in the parent, after the last run: drop the scenario's PostgreSQL databases."""
        if self.dialect == "postgresql":
            for name in (self.database, f"{self.database}_t"):
                admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def config_file(self) -> Path:
        return self.workdir / "config" / "carecast.yaml"

    def write_config(self, changes: dict[str, Any]) -> Path:
        from tests.conftest import write_config

        ledger = {"url": self.ledger_url, "delivery_chunk": self.delivery_chunk}
        changes = {"ledger": ledger, "outbox": str(self.workdir / "outbox")} | changes
        shutil.rmtree(self.workdir / "config", ignore_errors=True)
        return write_config(self.workdir, changes)

    def settings_and_ledger(self) -> tuple[Any, Any]:
        from carecast.ledger import Ledger
        from carecast.practice import load_settings

        settings = load_settings(self.config_file())
        return settings, Ledger(settings.ledger_url())

    def publish_one(self, channel: str, now: datetime | None = None) -> dict[str, float]:
        """CareCast publishes what is due on ``channel``: one publication, which must go out."""
        from carecast.pipeline import publish

        settings, ledger = self.settings_and_ledger()
        [outcome] = publish(settings, ledger, channel, now=now)
        assert outcome.state == "published", outcome.detail
        ledger.close()
        return {}

    def save_template(self) -> None:
        if self.dialect == "postgresql":
            admin(f'CREATE DATABASE "{self.database}_t" TEMPLATE "{self.database}"')
            self.template_file.touch()
        else:
            shutil.copyfile(self.ledger_file, self.template_file)


def admin(statement: str) -> None:
    """Run one statement on the PostgreSQL server's ``postgres`` database, outside a transaction (CREATE DATABASE)."""
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(statement.encode())


def remove_database(path: Path) -> None:
    """Remove the SQLite file ``path`` with its write-ahead log: a log left beside a new file would replay into it."""
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
