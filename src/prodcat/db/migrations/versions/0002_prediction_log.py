"""Prediction log: what the API predicted, for drift monitoring.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_log",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("category_code", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("title_chars", sa.Integer, nullable=False),
        sa.Column("description_chars", sa.Integer, nullable=False),
        sa.Column("input_hash", sa.Text, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("description", sa.Text),
    )
    op.create_index("ix_prediction_log_predicted_at", "prediction_log", ["predicted_at"])


def downgrade() -> None:
    op.drop_table("prediction_log")
