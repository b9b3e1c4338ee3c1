"""Each item keeps its body as a document, read once at ingest.

Revision ID: 0008_item_documents
Revises: 0007_publication_audiences
Create Date: 2026-12-05

``items.document`` holds the item's body as blocks (carecast.document: headings, paragraphs, lists, tables,
figures, embeds, quotes, buttons, footnotes), so no channel parses HTML again. Items stored before have none: they
are read from their sanitised HTML when a channel renders them (``ContentItem.body``).

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008_item_documents"
down_revision: str | Sequence[str] | None = "0007_publication_audiences"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``items.document``."""
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("document", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("document")
