"""Initial schema: labels, ingestion cursor and batches, products, rejects, evaluation set.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text),
    )
    op.create_table(
        "ingestion_cursor",
        sa.Column("dataset", sa.Text, primary_key=True),
        sa.Column("next_row", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", TZ, server_default=sa.func.now()),
    )
    op.create_table(
        "ingestion_batches",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("run_key", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("start_row", sa.Integer, nullable=False),
        sa.Column("end_row", sa.Integer, nullable=False),
        *[
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in (
                "rows_read",
                "rows_accepted",
                "rows_rejected",
                "rows_with_image",
                "rows_without_image",
            )
        ],
        sa.Column("logical_date", TZ),
        sa.Column("started_at", TZ, server_default=sa.func.now()),
        sa.Column("finished_at", TZ),
        sa.Column("error", sa.Text),
        sa.CheckConstraint("status in ('succeeded', 'failed')", name="batch_status"),
        sa.CheckConstraint(
            "status <> 'succeeded' or rows_read = rows_accepted + rows_rejected",
            name="batch_rows_add_up",
        ),
        sa.CheckConstraint("end_row >= start_row", name="batch_range"),
    )
    for name, column in (("uq_batch_run", "run_key"), ("uq_batch_start", "start_row")):
        op.create_index(
            name,
            "ingestion_batches",
            ["dataset", column],
            unique=True,
            postgresql_where=sa.text("status = 'succeeded'"),
        )
    op.create_table(
        "products",
        sa.Column("dataset", sa.Text, primary_key=True),
        sa.Column("product_id", sa.Text, primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("label_code", sa.Text, sa.ForeignKey("labels.code"), nullable=False),
        sa.Column("image_key", sa.Text),
        sa.Column("source_row", sa.Integer, nullable=False),
        sa.Column("batch_id", sa.BigInteger, sa.ForeignKey("ingestion_batches.id"), nullable=False),
        sa.Column("ingested_at", TZ, server_default=sa.func.now()),
        sa.UniqueConstraint("dataset", "source_row", name="uq_product_source_row"),
    )
    op.create_index("ix_products_batch", "products", ["batch_id"])
    op.create_table(
        "rejected_rows",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("batch_id", sa.BigInteger, sa.ForeignKey("ingestion_batches.id"), nullable=False),
        sa.Column("source_row", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("raw", JSONB, nullable=False),
        sa.UniqueConstraint("dataset", "source_row", name="uq_reject_source_row"),
    )
    op.create_table(
        "evaluation_set",
        sa.Column("dataset", sa.Text, primary_key=True),
        sa.Column("product_id", sa.Text, primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("label_code", sa.Text, nullable=False),
        sa.Column("image_path", sa.Text),
        sa.Column("source_row", sa.Integer, nullable=False),
        sa.UniqueConstraint("dataset", "source_row", name="uq_eval_source_row"),
    )


def downgrade() -> None:
    for table in (
        "evaluation_set", "rejected_rows", "products", "ingestion_batches",
        "ingestion_cursor", "labels",
    ):  # fmt: skip
        op.drop_table(table)
