"""The ledger's connection: one engine, sessions whose database failures surface as LedgerError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError, StatementError
from sqlalchemy.orm import Session

from carecast.errors import LedgerError
from carecast.ledger.schema import Base, PublicationRow
from carecast.model import now_utc


class LedgerStore:
    """What every part of the ledger shares: the engine and its sessions."""

    def __init__(self, url: str) -> None:
        try:
            self.engine: Engine = create_engine(url, future=True)
            if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            Base.metadata.create_all(self.engine)
        except (SQLAlchemyError, OSError) as exc:
            raise LedgerError(f"cannot open the ledger: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A session whose database failures surface as LedgerError (ours unwrapped, the driver's chained)."""
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                yield session
        except StatementError as exc:
            if isinstance(exc.orig, LedgerError):
                raise exc.orig from exc
            raise LedgerError(f"the ledger failed: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise LedgerError(f"the ledger failed: {exc}") from exc


def touch_claim(session: Session, publication_id: int) -> None:
    """Keep a live claim fresh, so the stale-claim sweep does not take a working sender for dead."""
    session.execute(
        update(PublicationRow)
        .where(PublicationRow.id == publication_id, PublicationRow.state == "claimed")
        .values(claimed_at=now_utc())
    )
