"""The ingestion cursor records where its next row starts in the source files.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ingestion_cursor", sa.Column("next_byte", sa.BigInteger))
    op.add_column("ingestion_cursor", sa.Column("next_label_byte", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("ingestion_cursor", "next_label_byte")
    op.drop_column("ingestion_cursor", "next_byte")
