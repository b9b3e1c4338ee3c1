"""Which audience and segment selected a publication's recipients, for ``carecast audit``.

Revision ID: 0007_publication_audiences
Revises: 0006_short_links
Create Date: 2026-12-05

A practice's newsletter and SMS channels address audiences of its config (patients, referring providers,
discharged patients). The audience and segment are recorded with each publication when its fan-out starts, so the
audit names them for every recipient whatever the config says later. Publications made before have none: the
audit names the channel's list file for them, as before.

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007_publication_audiences"
down_revision: str | Sequence[str] | None = "0006_short_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``publication_audiences``."""
    op.create_table(
        "publication_audiences",
        sa.Column("publication_id", sa.Integer(), nullable=False),
        sa.Column("audience", sa.String(length=100), nullable=False),
        sa.Column("segment", sa.String(length=100), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["publication_id"], ["publications.id"]),
        sa.PrimaryKeyConstraint("publication_id"),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("publication_audiences")
