"""Lookup indexes for a large ledger: ``status --since``, the PHI check's patients, the unknown deliveries.

Revision ID: 0004_lookup_indexes
Revises: 0003_entry_fingerprints
Create Date: 2026-11-29

At a million publications each of these queries scanned its whole table. Two are expression indexes: a query is
matched to one only when it is written the same way (``ITEM_PATIENT`` and ``PUBLICATION_WHEN`` in the schema), so the
expressions below are those, as they stood at this revision.

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004_lookup_indexes"
down_revision: str | Sequence[str] | None = "0003_entry_fingerprints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_publications = sa.table("publications", sa.column("finished_at"), sa.column("claimed_at"))
_items = sa.table("items", sa.column("data", sa.JSON()))
_deliveries = sa.table("deliveries", sa.column("state", sa.String()))
_UNKNOWN = _deliveries.c.state == "unknown"


def upgrade() -> None:
    """Create the three indexes."""
    op.create_index(
        "ix_publications_when",
        "publications",
        [sa.func.coalesce(_publications.c.finished_at, _publications.c.claimed_at)],
    )
    patient = _items.c.data[sa.bindparam(None, "patient", type_=sa.JSON.JSONStrIndexType)].as_string()
    op.create_index(
        "ix_items_patient",
        "items",
        [patient],
        sqlite_where=patient.is_not(None),
    )
    op.create_index(
        "ix_deliveries_unknown",
        "deliveries",
        ["publication_id", "address"],
        sqlite_where=_UNKNOWN,
        postgresql_where=_UNKNOWN,
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_deliveries_unknown", table_name="deliveries")
    op.drop_index("ix_items_patient", table_name="items")
    op.drop_index("ix_publications_when", table_name="publications")
