"""Short links, their clicks and the providers' engagement numbers.

Revision ID: 0006_short_links
Revises: 0005_drafts_publication
Create Date: 2026-12-05

``short_links`` maps a random code to the full UTM-tagged URL of one item on one channel; ``clicks`` counts each
request for one (when, a person or which preview fetcher; never an address); ``metrics`` keeps each publication's
latest numbers as its provider reported them, or why it could not.

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006_short_links"
down_revision: str | Sequence[str] | None = "0005_drafts_publication"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``short_links``, ``clicks`` and ``metrics``."""
    op.create_table(
        "short_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("item_id", sa.String(length=512), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("target_hash", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
        sa.UniqueConstraint("item_id", "channel", "target_hash", "recipient", name="one_code_per_link"),
    )
    op.create_table(
        "clicks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("agent", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["link_id"], ["short_links.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_clicks_link_id"), "clicks", ["link_id"], unique=False)
    op.create_index(op.f("ix_clicks_at"), "clicks", ["at"], unique=False)
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publication_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("numbers", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["publication_id"], ["publications.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("publication_id", "subject", name="one_reading_per_post"),
    )
    op.create_index(op.f("ix_metrics_publication_id"), "metrics", ["publication_id"], unique=False)


def downgrade() -> None:
    """Drop them."""
    op.drop_table("metrics")
    op.drop_table("clicks")
    op.drop_table("short_links")
