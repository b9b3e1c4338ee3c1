"""Each draft knows the publication that claimed it, so the drafts due are found without the published ones.

Revision ID: 0005_drafts_publication
Revises: 0004_lookup_indexes
Create Date: 2026-11-29

A published draft stays ``approved``: finding the due ones by what has no publication read every approved draft
of the channel, a million at a million publications. ``drafts.publication_id`` is set when a draft is claimed, and
``ix_drafts_due`` holds only the approved drafts without one. Drafts claimed before get theirs here.

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005_drafts_publication"
down_revision: str | Sequence[str] | None = "0004_lookup_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_drafts = sa.table("drafts", sa.column("id"), sa.column("state"), sa.column("publication_id"))
_publications = sa.table("publications", sa.column("id"), sa.column("draft_id"))
_DUE = (_drafts.c.state == "approved") & _drafts.c.publication_id.is_(None)


def upgrade() -> None:
    """Add ``drafts.publication_id``, fill it from the publications, and index the drafts due."""
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("publication_id", sa.Integer(), nullable=True))
    claimed_by = sa.select(_publications.c.id).where(_publications.c.draft_id == _drafts.c.id).scalar_subquery()
    op.execute(_drafts.update().values(publication_id=claimed_by))
    op.create_index("ix_drafts_due", "drafts", ["channel", "id"], sqlite_where=_DUE, postgresql_where=_DUE)


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_drafts_due", table_name="drafts")
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.drop_column("publication_id")
