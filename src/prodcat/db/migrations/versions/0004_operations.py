"""Operating the catalogue: listings awaiting a category, batch predictions, the review queue
and the corrections people send.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
NOW = sa.func.now()


def upgrade() -> None:
    op.alter_column("products", "label_code", nullable=True)
    op.create_table(
        "batch_predictions",
        sa.Column("dataset", sa.Text, primary_key=True),
        sa.Column("product_id", sa.Text, primary_key=True),
        sa.Column("model_version", sa.Text, primary_key=True),
        sa.Column("category_code", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("top3", JSONB, nullable=False),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "review_queue",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("dataset", sa.Text),
        sa.Column("product_id", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("category_code", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("source in ('batch', 'api')", name="review_source"),
    )
    op.create_index("uq_review_product_version", "review_queue",
                    ["dataset", "product_id", "model_version"], unique=True,
                    postgresql_where=sa.text("product_id is not null"))  # fmt: skip
    op.create_index("ix_review_open", "review_queue", ["confidence"],
                    postgresql_where=sa.text("reviewed_at is null"))  # fmt: skip
    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("review_id", sa.BigInteger, sa.ForeignKey("review_queue.id")),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("product_id", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("label_code", sa.Text, sa.ForeignKey("labels.code"), nullable=False),
        sa.Column("sent_by", sa.Text, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("product_id is not null or title is not null", name="feedback_about"),
    )
    op.create_index("ix_feedback_product", "feedback", ["dataset", "product_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("review_queue")
    op.drop_table("batch_predictions")
    op.execute("delete from products where label_code is null")
    op.alter_column("products", "label_code", nullable=False)
