"""The disk under the SQLite ledger fills while a run is sending: the run stops with a StorageError that names the
ledger's file and what to do, nothing is recorded as sent that the provider does not have, and once space is freed
a later run resumes the claim (asking the provider about what was in flight) and reaches everyone exactly once.

The full disk is SQLite's own answer (``SQLITE_FULL``, "database or disk is full") raised at the DBAPI boundary,
from the engine's connection, for every write once the provider has the first post request in hand.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from carecast.errors import StorageError
from carecast.pipeline import adapt, publish
from tests.channels import test_faults
from tests.channels.test_faults import CLAIM_TIMEOUT, ITEMS, WHEN, Provider, prepared
from tests.providers import RecordedRequest

#: test_faults' channel wired to its provider fake: one post per item (Facebook), one text per recipient (SMS).
provider = test_faults.provider
#: Seconds the channel waits for its provider: no answer is lost to a loaded machine (none is held back here).
PROVIDER_TIMEOUT = 10
WRITES = ("INSERT", "UPDATE", "DELETE")


def disk_full() -> sqlite3.OperationalError:
    """What SQLite raises when a write needs a page the disk has no room for."""
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    error.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    return error


class _Cursor(sqlite3.Cursor):
    """A cursor whose writes SQLite answers "full" once ``FULL`` is set: the DBAPI boundary, which both the ORM's
    statements and the fan-out's own (on the driver's cursor, no SQLAlchemy event) cross."""

    def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
        if FULL.is_set() and sql.lstrip().upper().startswith(WRITES):
            raise disk_full()
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
        if FULL.is_set() and sql.lstrip().upper().startswith(WRITES):
            raise disk_full()
        return super().executemany(sql, *args)


class _Connection(sqlite3.Connection):
    def cursor(self, factory: Any = _Cursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)


#: Set while the disk is full.
FULL = threading.Event()


@pytest.mark.parametrize("provider", ["facebook", "sms"], indirect=True)
def test_a_ledger_disk_that_fills_mid_run_stops_it_with_a_storage_error_and_a_later_run_reaches_everyone_once(
    provider: Provider, tmp_path: Path
) -> None:
    ledger = prepared(provider, f"sqlite:///{tmp_path / 'ledger.db'}", ITEMS)
    adapt(provider.settings, ledger, provider.instance, now=WHEN)
    FULL.clear()
    freed = threading.Event()

    def watched(request: RecordedRequest) -> None:
        if provider.is_post(request) and not freed.is_set():
            FULL.set()  # the disk fills while the provider acts on the first post

    def connecting(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        cparams["factory"] = _Connection

    provider.server.watch(watched)
    event.listen(ledger.engine, "do_connect", connecting)
    ledger.engine.dispose()  # every connection from now on is made through the listener
    try:
        with pytest.raises(StorageError) as stopped:
            publish(provider.settings, ledger, provider.instance, now=WHEN)
    finally:
        freed.set()
        FULL.clear()  # space freed

    message = str(stopped.value)
    assert str(tmp_path / "ledger.db") in message and "free space there" in message, message
    assert "MiB free" in message and "ledger.url" in message
    held = provider.posted()
    assert held, "the provider had the first post when the disk filled"
    publications = ledger.publications()
    assert not [p for p in publications if p.state == "sent"], publications
    recorded = [r for p in publications for r in ledger.deliveries(p.id).values() if r.state == "sent"]
    assert not recorded, recorded  # nothing recorded sent after the disk filled

    time.sleep(CLAIM_TIMEOUT + 0.2)  # the stopped run's claim goes stale
    outcomes = publish(provider.settings, ledger, provider.instance, now=WHEN)

    assert {outcome.state for outcome in outcomes} == {"published"}, [o.detail for o in outcomes]
    assert len(ledger.publications()) == ITEMS and {p.state for p in ledger.publications()} == {"sent"}
    counted = Counter(provider.posted())
    assert len(counted) == ITEMS * provider.per_item and set(counted.values()) == {1}, counted
    assert ledger.unknown_deliveries() == {}
    ledger.close()
