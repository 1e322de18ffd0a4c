"""A shadow challenger's answers in the prediction log, with their agreement.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    shadow = sa.Column("shadow", sa.Boolean, nullable=False, server_default="false")
    op.add_column("prediction_log", shadow)
    op.add_column("prediction_log", sa.Column("agrees", sa.Boolean))
    op.create_index("ix_prediction_log_shadow", "prediction_log", ["model_version"],
                    postgresql_where=sa.text("shadow"))  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_prediction_log_shadow", "prediction_log")
    op.drop_column("prediction_log", "agrees")
    op.drop_column("prediction_log", "shadow")
