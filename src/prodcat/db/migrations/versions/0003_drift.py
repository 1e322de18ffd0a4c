"""Drift detection: a summary row per checked window, and the champion's reference outputs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("window_name", sa.Text, nullable=False),
        sa.Column("run_key", sa.Text, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True)),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("after_batch", sa.BigInteger),
        sa.Column("up_to_batch", sa.BigInteger),
        sa.Column("champion_version", sa.Text, nullable=False),
        sa.Column("reference_rows", sa.Integer, nullable=False),
        sa.Column("current_rows", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("drift_share", sa.Float),
        sa.Column("drifted_columns", sa.Integer),
        sa.Column("columns", JSONB, nullable=False, server_default="{}"),
        sa.Column("report_key", sa.Text),
        sa.Column("retrain_triggered", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.CheckConstraint(
            "status in ('drift', 'no_drift', 'insufficient_data')", name="drift_status"
        ),
        sa.UniqueConstraint("window_name", "run_key", name="uq_drift_window_run"),
    )
    op.create_index("ix_drift_reports_window_end", "drift_reports", ["window_name", "window_end"])
    op.create_table(
        "drift_reference",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("dataset", sa.Text, primary_key=True),
        sa.Column("product_id", sa.Text, primary_key=True),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("predicted_category", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("oov_share", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("drift_reference")
    op.drop_table("drift_reports")
