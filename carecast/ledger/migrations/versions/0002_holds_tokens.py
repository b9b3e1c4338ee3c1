"""PHI holds and unsubscribe tokens: the tables added to the ledger since the baseline.

Revision ID: 0002_holds_tokens
Revises: 0001_baseline
Create Date: 2026-11-29

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002_holds_tokens"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the PHI holds and the unsubscribe tokens."""
    op.create_table(
        "phi_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.Text(), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("draft_id", "fingerprint"),
    )
    with op.batch_alter_table("phi_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_phi_holds_draft_id"), ["draft_id"], unique=False)

    op.create_table(
        "unsubscribe_tokens",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("channel_type", sa.String(length=50), nullable=False),
        sa.Column("list_id", sa.Text(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("unsubscribe_tokens")
    with op.batch_alter_table("phi_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_phi_holds_draft_id"))

    op.drop_table("phi_holds")
