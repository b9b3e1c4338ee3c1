"""Each delivery keeps when the request in flight or in doubt was claimed.

Revision ID: 0009_delivery_claimed_at
Revises: 0008_item_documents
Create Date: 2026-12-05

``deliveries.claimed_at`` bounds the lookup of a request whose answer was lost: only a post the provider made at or
after it (less a clock skew allowance) can be that request's. Rows claimed before have none: their lookup is
unbounded, as before.

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009_delivery_claimed_at"
down_revision: str | Sequence[str] | None = "0008_item_documents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``deliveries.claimed_at``."""
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("claimed_at")
