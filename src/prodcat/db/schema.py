"""Tables of the app database (SQLAlchemy Core), shared by queries and migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

labels = Table(
    "labels",
    metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text),
)

ingestion_cursor = Table(
    "ingestion_cursor",
    metadata,
    Column("dataset", Text, primary_key=True),
    Column("next_row", Integer, nullable=False, server_default="0"),
    # Where next_row starts in the source file (and in its labels file): each batch reads
    # from there, so batch k costs what batch 1 does. Null: unknown, read from the top.
    Column("next_byte", BigInteger),
    Column("next_label_byte", BigInteger),
    Column("updated_at", DateTime(timezone=True), server_default=func.now()),
)

ingestion_batches = Table(
    "ingestion_batches",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("dataset", Text, nullable=False),
    Column("run_key", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("start_row", Integer, nullable=False),
    Column("end_row", Integer, nullable=False),
    Column("rows_read", Integer, nullable=False, server_default="0"),
    Column("rows_accepted", Integer, nullable=False, server_default="0"),
    Column("rows_rejected", Integer, nullable=False, server_default="0"),
    Column("rows_with_image", Integer, nullable=False, server_default="0"),
    Column("rows_without_image", Integer, nullable=False, server_default="0"),
    Column("logical_date", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True), server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("error", Text),
    CheckConstraint("status in ('succeeded', 'failed')", name="batch_status"),
    CheckConstraint(
        "status <> 'succeeded' or rows_read = rows_accepted + rows_rejected",
        name="batch_rows_add_up",
    ),
    CheckConstraint("end_row >= start_row", name="batch_range"),
    Index(
        "uq_batch_run",
        "dataset",
        "run_key",
        unique=True,
        postgresql_where=text("status = 'succeeded'"),
    ),
    Index(
        "uq_batch_start",
        "dataset",
        "start_row",
        unique=True,
        postgresql_where=text("status = 'succeeded'"),
    ),
)

products = Table(
    "products",
    metadata,
    Column("dataset", Text, primary_key=True),
    Column("product_id", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("label_code", Text, ForeignKey("labels.code")),  # null: awaiting a category
    Column("image_key", Text),
    Column("source_row", Integer, nullable=False),
    Column("batch_id", BigInteger, ForeignKey("ingestion_batches.id"), nullable=False),
    Column("ingested_at", DateTime(timezone=True), server_default=func.now()),
    UniqueConstraint("dataset", "source_row", name="uq_product_source_row"),
    Index("ix_products_batch", "batch_id"),
)

rejected_rows = Table(
    "rejected_rows",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("dataset", Text, nullable=False),
    Column("batch_id", BigInteger, ForeignKey("ingestion_batches.id"), nullable=False),
    Column("source_row", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("detail", Text),
    Column("raw", JSONB, nullable=False),
    UniqueConstraint("dataset", "source_row", name="uq_reject_source_row"),
)

evaluation_set = Table(
    "evaluation_set",
    metadata,
    Column("dataset", Text, primary_key=True),
    Column("product_id", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("label_code", Text, nullable=False),
    Column("image_path", Text),
    Column("source_row", Integer, nullable=False),
    UniqueConstraint("dataset", "source_row", name="uq_eval_source_row"),
)

# Written by the API in the background; read by drift detection. reset_data leaves it alone:
# it records what the served models saw, not the catalogue.
prediction_log = Table(
    "prediction_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("predicted_at", DateTime(timezone=True), nullable=False),
    Column("model_version", Text, nullable=False),
    Column("category_code", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("title_chars", Integer, nullable=False),
    Column("description_chars", Integer, nullable=False),
    Column("input_hash", Text, nullable=False),
    Column("title", Text),  # raw text only when PRODCAT_API__LOG_RAW_TEXT is on
    Column("description", Text),
    # A challenger's answer to the same input, scored in shadow: never served.
    Column("shadow", Boolean, nullable=False, server_default="false"),
    Column("agrees", Boolean),  # shadow rows: the same category as the champion's answer
    Index("ix_prediction_log_predicted_at", "predicted_at"),
    Index("ix_prediction_log_shadow", "model_version", postgresql_where=text("shadow")),
)

# One row per drift check of one window ("new_data" or "live_traffic"); read by /drift.
drift_reports = Table(
    "drift_reports",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("window_name", Text, nullable=False),
    Column("run_key", Text, nullable=False),
    Column("window_start", DateTime(timezone=True)),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("after_batch", BigInteger),  # new data: the batches after_batch < id <= up_to_batch
    Column("up_to_batch", BigInteger),
    Column("champion_version", Text, nullable=False),
    Column("reference_rows", Integer, nullable=False),
    Column("current_rows", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("drift_share", Float),
    Column("drifted_columns", Integer),
    Column("columns", JSONB, nullable=False, server_default="{}"),
    Column("report_key", Text),
    Column("retrain_triggered", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
    CheckConstraint("status in ('drift', 'no_drift', 'insufficient_data')", name="drift_status"),
    UniqueConstraint("window_name", "run_key", name="uq_drift_window_run"),
    Index("ix_drift_reports_window_end", "window_name", "window_end"),
)

# The champion's outputs on held-out rows, computed once per trained run: the reference for
# predicted category, confidence and out-of-vocabulary share.
drift_reference = Table(
    "drift_reference",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("dataset", Text, primary_key=True),
    Column("product_id", Text, primary_key=True),
    Column("model_version", Text, nullable=False),
    Column("predicted_category", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("oov_share", Float),
)

# The champion's answers for listings, written by batch_predict: one row per listing and model
# version, so a rerun for the same version scores nothing twice.
batch_predictions = Table(
    "batch_predictions",
    metadata,
    Column("dataset", Text, primary_key=True),
    Column("product_id", Text, primary_key=True),
    Column("model_version", Text, primary_key=True),
    Column("category_code", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("top3", JSONB, nullable=False),
    Column("predicted_at", DateTime(timezone=True), nullable=False),
)

# Answers under PRODCAT_REVIEW__CONFIDENCE_THRESHOLD, from batch_predict (with a product) or
# the API (with its text), waiting for a person; its id is the prediction id /feedback takes.
review_queue = Table(
    "review_queue",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("source", Text, nullable=False),
    Column("dataset", Text),
    Column("product_id", Text),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("category_code", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("reviewed_at", DateTime(timezone=True)),
    CheckConstraint("source in ('batch', 'api')", name="review_source"),
    Index(
        "uq_review_product_version",
        "dataset",
        "product_id",
        "model_version",
        unique=True,
        postgresql_where=text("product_id is not null"),
    ),
    Index("ix_review_open", "confidence", postgresql_where=text("reviewed_at is null")),
)

# Corrections people sent through POST /feedback: the latest per listing overrides its label
# in training; one about an API answer (no listing) trains on the text it was about.
feedback = Table(
    "feedback",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("review_id", BigInteger, ForeignKey("review_queue.id")),
    Column("dataset", Text, nullable=False),
    Column("product_id", Text),
    Column("title", Text),
    Column("description", Text),
    Column("label_code", Text, ForeignKey("labels.code"), nullable=False),
    Column("sent_by", Text, nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("product_id is not null or title is not null", name="feedback_about"),
    Index("ix_feedback_product", "dataset", "product_id"),
)

# What reset_data empties, children first. Drift reports describe the catalogue's windows,
# so they go with it; prediction_log stays.
PRODCAT_TABLES = [
    feedback,
    review_queue,
    batch_predictions,
    drift_reports,
    drift_reference,
    products,
    rejected_rows,
    evaluation_set,
    ingestion_batches,
    ingestion_cursor,
    labels,
]
