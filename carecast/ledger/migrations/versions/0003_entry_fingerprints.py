"""Entry fingerprints: each item keeps a hash of the raw feed entry it was read from.

Revision ID: 0003_entry_fingerprints
Revises: 0002_holds_tokens
Create Date: 2026-11-29

A poll passes over the entries whose fingerprint the ledger holds, so an unchanged entry is not cleaned, sanitised
or written again. Items stored before have none: the first poll after the upgrade reads their entries once more
and keeps their fingerprints.

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003_entry_fingerprints"
down_revision: str | Sequence[str] | None = "0002_holds_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``items.entry_fingerprint`` and its index."""
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry_fingerprint", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_items_entry_fingerprint"), ["entry_fingerprint"], unique=False)


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_items_entry_fingerprint"))
        batch_op.drop_column("entry_fingerprint")
