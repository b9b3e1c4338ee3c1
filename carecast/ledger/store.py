"""The ledger's connection: one engine, sessions whose database failures surface as LedgerError, and retries.

A database that restarts or drops a connection must not cost a record: a send the provider accepted has to be
written down. So every public method of every ledger part is retried, on a fresh connection (``pool_pre_ping``
checks each one a database server's pool hands out), when the database fails in a way that passes (a lost or
refused connection, a lock held too long), with backoff, until ``retry_budget`` seconds are spent; then LedgerError
is raised and the claim of a publication in progress goes stale and is resumed by a later run. A disk that fills
(SQLite's ``SQLITE_FULL``, PostgreSQL's ``disk_full``, ``ENOSPC``/``EDQUOT``) does not pass on its own: it is raised
at once as StorageError, naming the ledger's file and what to do; the claim in progress is resumed the same way.
Every write is a compare-and-set or an upsert, so a retry of a write whose commit did land changes nothing.

SQLite serialises writers: each transaction begins ``IMMEDIATE`` (taking the write lock at once, waiting up to
``SQLITE_BUSY_TIMEOUT`` for it) instead of failing when two readers both try to write. Its journal is a
write-ahead log (``journal_mode=WAL``, synchronous ``FULL``): a commit is one fsync instead of three, still durable
when the process or the machine dies, and ``carecast status`` reads while a run writes.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import bindparam, create_engine, event, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session

from carecast.errors import LedgerError, StorageError
from carecast.ledger import migrate
from carecast.ledger.schema import Base, PublicationRow, UtcDateTime
from carecast.model import now_utc

log = logging.getLogger(__name__)

#: Seconds a SQLite transaction waits for another process's write lock before it fails (and is retried).
SQLITE_BUSY_TIMEOUT = 30.0
#: Default seconds the ledger keeps retrying an operation while the database is unreachable.
RETRY_BUDGET = 30.0
#: The first wait between two attempts; doubled each time, up to ``MAX_BACKOFF``.
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 2.0

Method = TypeVar("Method", bound=Callable[..., Any])


class LedgerStore:
    """What every part of the ledger shares: the engine, its sessions, and retries of every public method."""

    def __init__(self, url: str, *, retry_budget: float = RETRY_BUDGET) -> None:
        self.retry_budget = retry_budget
        try:
            if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = _engine(url)
        except (SQLAlchemyError, OSError) as exc:
            raise LedgerError(f"cannot open the ledger: {exc}") from exc
        self._open_schema()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if inspect.isfunction(value) and not name.startswith("_") and name != "close":
                setattr(cls, name, _retried(value))

    def _open_schema(self) -> None:
        attempt = _Attempts(self.retry_budget)
        while True:
            try:
                migrate.upgrade(self.engine)
                return
            except SQLAlchemyError as exc:
                if _disk_full(exc):
                    raise _full(self.engine, "opening the ledger") from exc
                if not (_passing(exc) and attempt.wait("opening the ledger", exc)):
                    raise LedgerError(f"cannot open the ledger: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A session whose database failures surface as LedgerError (ours unwrapped, the driver's chained)."""
        with _ledger_errors(), Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _driver_transaction(self) -> Iterator[Any]:
        """One transaction on the driver's own cursor (SQLite's begun ``IMMEDIATE``, as every transaction here),
        committed when the block ends and rolled back if it raises; the driver's failures surface as
        ``_session``'s do (a busy lock or a lost connection tried again by the caller's retries). What a fan-out
        runs once per recipient: each statement's text the same every time (the driver prepares it once and keeps
        it), no SQLAlchemy execution or row per statement. Parameters are named as the driver names them
        (``driver_marker``) and moments given as the ledger stores them (``_stored_moment``)."""
        with _ledger_errors(), self.engine.connect() as connection:
            dialect = connection.dialect
            driver: Any = connection.connection.driver_connection
            try:
                cursor = driver.cursor()
                if dialect.name == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                driver.commit()
            except BaseException as exc:
                with contextlib.suppress(dialect.loaded_dbapi.Error):  # a lost connection: what failed is the news
                    driver.rollback()
                if isinstance(exc, dialect.loaded_dbapi.Error):
                    raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
                raise

    @functools.cached_property
    def _stored_moment(self) -> Callable[[datetime | None], Any]:
        """An aware moment as the driver is given it for this ledger (SQLite: its text in UTC)."""
        dialect = self.engine.dialect
        stored = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
        return stored if stored is not None else (lambda moment: moment)


@contextmanager
def _ledger_errors() -> Iterator[None]:
    """Database failures of the block raised as LedgerError (ours unwrapped, the driver's chained)."""
    try:
        yield
    except StatementError as exc:
        if isinstance(exc.orig, LedgerError):
            raise exc.orig from exc
        raise LedgerError(f"the ledger failed: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise LedgerError(f"the ledger failed: {exc}") from exc


def driver_marker(dialect: str) -> Callable[[str], str]:
    """How the driver of ``dialect`` names a parameter in SQL text: ``:name`` (sqlite3), ``%(name)s`` (psycopg)."""
    return "%({})s".format if dialect == "postgresql" else ":{}".format


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    # No ping before each use: a SQLite connection is a file, never dropped by a server, and a fan-out checks one
    # out once or twice per recipient.
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})

    @event.listens_for(engine, "connect")
    def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own BEGIN would be DEFERRED
        # A fan-out commits once or twice per recipient (delivery_chunk 1): a rollback journal costs three fsyncs a
        # commit, the write-ahead log one. The mode stays with the file; switching waits out other connections.
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=FULL")

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _passing(exc: BaseException) -> bool:
    """Whether a database failure may pass on its own: a lost or refused connection, a lock held too long.

    SQLite reports much else as an operational error too (a missing table): only its busy lock passes.
    """
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc.orig, sqlite3.Error):
        return "locked" in str(exc.orig) or "busy" in str(exc.orig)
    return isinstance(exc, OperationalError | InterfaceError)


#: PostgreSQL's SQLSTATE for a full disk (``disk_full``).
PG_DISK_FULL = "53100"


def _disk_full(exc: BaseException) -> bool:
    """Whether a database failure (or one it was caused by) is a full disk: SQLite's ``SQLITE_FULL`` ("database or
    disk is full"), PostgreSQL's ``disk_full``, or the operating system's ENOSPC or EDQUOT."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    # The chain can loop: a LedgerError raised from the StatementError whose ``orig`` it is.
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        if isinstance(seen, sqlite3.Error) and (
            getattr(seen, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or str(seen) == "database or disk is full"
        ):
            return True
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if PG_DISK_FULL in (getattr(seen, "sqlstate", None), getattr(seen, "pgcode", None)):
            return True
        orig = getattr(seen, "orig", None)
        seen = orig if isinstance(orig, BaseException) else seen.__cause__
    return False


def _full(engine: Engine, during: str) -> StorageError:
    """The StorageError of the ledger at ``engine`` whose disk filled during ``during``: its file and the room left
    on that disk, or the database server's URL (without its password), whose disk this machine cannot see."""
    file = engine.url.database if engine.dialect.name == "sqlite" else None
    if not file or file == ":memory:":
        return StorageError(engine.url.render_as_string(hide_password=True), None, during)
    path = Path(file).absolute()
    existing = next(folder for folder in path.parents if folder.exists())
    return StorageError(path, shutil.disk_usage(existing).free, during)


class _Attempts:
    """Backoff between attempts within a budget of seconds."""

    def __init__(self, budget: float) -> None:
        self.deadline = time.monotonic() + budget
        self.backoff = FIRST_BACKOFF

    def wait(self, what: str, exc: BaseException) -> bool:
        """Sleep before the next attempt and return True, or False when the budget would be exceeded."""
        if time.monotonic() + self.backoff > self.deadline:
            return False
        log.warning("the ledger failed %s (%s); trying again in %.1fs", what, type(exc).__name__, self.backoff)
        time.sleep(self.backoff)
        self.backoff = min(self.backoff * 2, MAX_BACKOFF)
        return True


def _retried(method: Method) -> Method:
    """``method`` tried again on a fresh connection while the database failure passes, within the budget."""

    @functools.wraps(method)
    def attempt(self: LedgerStore, *args: Any, **kwargs: Any) -> Any:
        attempts = _Attempts(self.retry_budget)
        while True:
            try:
                return method(self, *args, **kwargs)
            except LedgerError as exc:
                cause = exc.__cause__
                if cause is not None and _disk_full(cause):
                    raise _full(self.engine, method.__name__) from cause
                if cause is None or not _passing(cause) or not attempts.wait(method.__name__, cause):
                    raise

    return attempt  # type: ignore[return-value]


#: Keeps a live claim fresh (parameters ``publication_id`` and ``now``): built once, as it runs once per chunk.
TOUCH_CLAIM = (
    update(PublicationRow)
    .where(PublicationRow.id == bindparam("publication_id"), PublicationRow.state == "claimed")
    .values(claimed_at=bindparam("now"))
)


def touch_claim(session: Session, publication_id: int) -> None:
    """Keep a live claim fresh, so a later run does not take a working sender for dead and resume its claim."""
    session.execute(TOUCH_CLAIM, {"publication_id": publication_id, "now": now_utc()})


def insert_new(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    *,
    refresh: Sequence[str] = (),
) -> int:
    """Insert ``rows`` of ``model`` whose unique ``key`` is not taken yet; return how many were written.

    A row whose key exists already was written by someone else (a racing run, an earlier attempt): it is left as it
    is, or, for the columns named in ``refresh``, given this row's values. Never raises for a taken key.
    """
    return len(inserted_keys(session, model, rows, key, refresh=refresh))


def inserted_keys(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    *,
    refresh: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """:func:`insert_new`, returning the ``key`` of each row written (or refreshed) instead of how many."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # The rows as parameters of one statement (executed as a few multi-row INSERTs), not literal VALUES: the
    # statement is compiled once and cached, whatever the number of rows.
    statement = insert(model)
    if refresh:
        statement = statement.on_conflict_do_update(
            index_elements=list(key), set_={column: statement.excluded[column] for column in refresh}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(key))
    # RETURNING, not rowcount: drivers report -1 for a multi-row insert.
    key_columns = [model.__table__.c[column] for column in key]
    return [tuple(row) for row in session.execute(statement.returning(*key_columns), list(rows))]
