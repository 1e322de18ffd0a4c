"""Every SQL read of training and evaluation data: one place, so they cannot disagree.

Training rows are the labelled products of a dataset; the evaluation set is held out and never
among them. A correction sent through POST /feedback overrides a product's label (the latest
wins), gives a listing awaiting a category its label, and one about an API answer adds its text.
A champion's training snapshot is every product up to its `snapshot.max_batch_id` and every
correction up to its `snapshot.max_feedback_id`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pandas as pd
from sqlalchemy import text

from prodcat.config import Settings
from prodcat.db import get_engine

log = logging.getLogger(__name__)
# Rows per fetch of a server-side cursor: the driver never holds the whole result at once.
READ_CHUNK_ROWS = 100_000
PRODUCT_COLUMNS = "product_id, title, description, label_code, batch_id"
# Ingestion never loads an evaluation row as a product; every training read says so again, so
# that no change elsewhere can ever let a model train on the rows it is evaluated on.
NOT_HELD_OUT = (
    "not exists (select 1 from evaluation_set e "
    "where e.dataset = products.dataset and e.product_id = products.product_id)"
)


def read_frame(settings: Settings, sql: str, params: dict) -> pd.DataFrame:
    """A query's rows (named :parameters) as a DataFrame."""
    with get_engine(settings).connect() as conn:
        return pd.read_sql_query(text(sql), conn, params=params)


def iter_frames(
    settings: Settings, sql: str, params: dict, chunk_rows: int = READ_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """A query's rows in DataFrames of at most chunk_rows, through a server-side cursor."""
    with get_engine(settings).connect() as conn:
        conn = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows)
        yield from pd.read_sql_query(text(sql), conn, params=params, chunksize=chunk_rows)


# The latest correction of each listing.
LATEST_CORRECTION = (
    "select distinct on (product_id) product_id, label_code, id from feedback "
    "where dataset = :d and product_id is not null order by product_id, id desc"
)


# Labelled products (corrected labels win), and corrections of API answers when :b is 0.
PRODUCTS_SQL = (
    "select products.product_id, title, description, "
    "coalesce(c.label_code, products.label_code) as label_code, batch_id, "
    "c.id is not null as corrected, coalesce(c.id, 0) as feedback_id, source_row "
    f"from products left join ({LATEST_CORRECTION}) c using (product_id) "
    "where dataset = :d and batch_id > :b "
    f"and coalesce(c.label_code, products.label_code) is not null and {NOT_HELD_OUT} "
    "union all select * from (select distinct on (review_id) 'feedback-' || review_id, "
    "title, coalesce(description, ''), label_code, 0, true, id, id from feedback "
    "where dataset = :d and product_id is null and :b = 0 order by review_id, id desc) a "
    "order by batch_id, source_row"
)


def load_products(settings: Settings, dataset: str, after_batch: int = 0) -> pd.DataFrame:
    """Labelled products of a dataset ingested after a batch id (all of them for 0), each with
    its corrected label where someone sent one (`corrected` says which); for 0, corrections of
    API answers too (batch id 0, ids `feedback-<id>`). Read in chunks, its progress logged:
    the driver's rows and the frame never exist side by side whole."""
    chunks, rows = [], 0
    for chunk in iter_frames(settings, PRODUCTS_SQL, {"d": dataset, "b": after_batch}):
        chunks.append(chunk)
        rows += len(chunk)
        if len(chunk) == READ_CHUNK_ROWS:
            log.info("loaded %d rows of %s so far", rows, dataset)
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


def load_batch_range(
    settings: Settings, dataset: str, after_batch: int, up_to_batch: int, rows: int, seed: int
) -> pd.DataFrame:
    """A seeded sample of at most `rows` products with after_batch < batch_id <= up_to_batch."""
    return read_frame(
        settings,
        f"select {PRODUCT_COLUMNS} from products where dataset = :d and batch_id > :a "
        f"and batch_id <= :u and label_code is not null and {NOT_HELD_OUT} "
        "order by md5(product_id || :s) limit :n",
        {"d": dataset, "a": after_batch, "u": up_to_batch, "s": str(seed), "n": rows},
    )


def find_last_batch(settings: Settings, dataset: str, ingested_by) -> int:
    """The highest batch id with products ingested at or before a time (0 when none)."""
    with get_engine(settings).connect() as conn:
        row = conn.exec_driver_sql(
            "select coalesce(max(batch_id), 0) from products "
            "where dataset = %s and ingested_at <= %s",
            (dataset, ingested_by),
        ).one()
    return int(row[0])


def load_category_names(settings: Settings) -> dict[str, str]:
    """Label code -> name, for the labels that have one."""
    with get_engine(settings).connect() as conn:
        rows = conn.exec_driver_sql("select code, name from labels where name is not null").all()
    return {code: name for code, name in rows}


def load_evaluation_frame(settings: Settings, dataset: str) -> pd.DataFrame:
    """The held-out rows reset_data carved: product id, title, description and label."""
    return read_frame(
        settings,
        "select product_id, title, description, label_code from evaluation_set "
        "where dataset = :d order by source_row",
        {"d": dataset},
    )


def load_evaluation_set(settings: Settings, dataset: str) -> tuple[pd.DataFrame, pd.Series]:
    """The evaluation set as features (title, description) and labels."""
    frame = load_evaluation_frame(settings, dataset)
    return frame[["title", "description"]], frame["label_code"]


def count_training_data(settings: Settings, dataset: str) -> tuple[int, int]:
    """Labelled products a model of this dataset would train on, and evaluation rows."""
    with get_engine(settings).connect() as conn:
        return conn.exec_driver_sql(
            "select (select count(*) from products where dataset = %s "
            f"and label_code is not null and {NOT_HELD_OUT}), "
            "(select count(*) from evaluation_set where dataset = %s)",
            (dataset, dataset),
        ).one()


def count_backlog(
    since_batch_id: int | None, settings: Settings | None = None, since_feedback_id: int = 0
) -> int:
    """Labelled products ingested in batches after since_batch_id (all of them when None), and
    corrections sent after since_feedback_id."""
    with get_engine(settings).connect() as conn:
        row = conn.exec_driver_sql(
            "select (select count(*) from products where batch_id > %s "
            "and label_code is not null) + (select count(*) from feedback where id > %s)",
            (since_batch_id or 0, since_feedback_id),
        ).one()
    return int(row[0])
