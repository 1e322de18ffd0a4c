"""The review queue and the corrections people send.

Answers under PRODCAT_REVIEW__CONFIDENCE_THRESHOLD go to `review_queue`: from batch_predict
with their listing, from the API with their text. A correction (POST /feedback) names a
listing or a queued answer and the right category; it is kept with who sent it and when, and
the next training uses it over the original label (prodcat.data.training_set).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from prodcat.config import Settings
from prodcat.db import get_engine

API_REVIEW_COLUMNS = ("source", "title", "description", "category_code", "confidence",
                      "model_version", "created_at")  # fmt: skip


class UnknownTarget(LookupError):
    """The listing or queued answer a correction names does not exist."""


class UnknownCategory(LookupError):
    """The category a correction gives does not exist."""


@dataclass(frozen=True)
class Correction:
    category_code: str
    sent_by: str
    product_id: str | None = None
    review_id: int | None = None


def queue_batch_answers(
    cur, settings: Settings, dataset: str, version: str, frame: pd.DataFrame
) -> int:
    """Queue the doubtful answers of a scored chunk (cursor of the caller's transaction);
    an answer already queued for this listing and version is not queued again."""
    doubtful = frame[frame["confidence"] < settings.review.confidence_threshold]
    if doubtful.empty:
        return 0
    rows = [(dataset, r.product_id, r.title, r.description or "", r.category_code,
             float(r.confidence), version) for r in doubtful.itertuples()]  # fmt: skip
    cur.executemany(
        "insert into review_queue (source, dataset, product_id, title, description, "
        "category_code, confidence, model_version) values ('batch', %s, %s, %s, %s, %s, %s, %s) "
        "on conflict do nothing",
        rows,
    )
    return len(rows)


def copy_api_answers(cursor, lines: list[str]) -> None:
    """Append doubtful API answers (lines of COPY text, API_REVIEW_COLUMNS) to the queue."""
    if lines:
        columns = ", ".join(API_REVIEW_COLUMNS)
        cursor.copy_expert(f"COPY review_queue ({columns}) FROM STDIN", io.StringIO("".join(lines)))


def list_open_reviews(settings: Settings, limit: int) -> list[dict]:
    """Queued answers nobody has reviewed, lowest confidence first."""
    with get_engine(settings).connect() as conn:
        rows = conn.exec_driver_sql(
            "select id, source, dataset, product_id, title, description, category_code, "
            "confidence, model_version, created_at from review_queue "
            "where reviewed_at is null order by confidence, id limit %s",
            (limit,),
        ).mappings()
        return [dict(r) for r in rows]


def record_correction(settings: Settings, dataset: str, correction: Correction) -> dict:
    """Store a correction and close the queued answers it settles; UnknownTarget names what
    does not exist. Returns the stored row."""
    with get_engine(settings).begin() as conn:
        cur = conn.connection.cursor()
        cur.execute("select 1 from labels where code = %s", (correction.category_code,))
        if cur.fetchone() is None:
            raise UnknownCategory(f"category {correction.category_code!r} does not exist")
        product_id, title, description = find_target(cur, dataset, correction)
        cur.execute(
            "insert into feedback (review_id, dataset, product_id, title, description, "
            "label_code, sent_by) values (%s, %s, %s, %s, %s, %s, %s) returning id, sent_at",
            (correction.review_id, dataset, product_id, title, description,
             correction.category_code, correction.sent_by),
        )  # fmt: skip
        feedback_id, sent_at = cur.fetchone()
        close_reviews(cur, dataset, product_id, correction.review_id, sent_at)
    return {"feedback_id": feedback_id, "product_id": product_id, "review_id":
            correction.review_id, "category_code": correction.category_code,
            "sent_by": correction.sent_by, "sent_at": sent_at}  # fmt: skip


def find_target(cur, dataset: str, correction: Correction) -> tuple[str | None, ...]:
    """(product id, title, description) a correction is about: a listing's id, or for a
    queued API answer (no listing) its text."""
    if correction.review_id is not None:
        cur.execute(
            "select product_id, title, description from review_queue where id = %s "
            "and (dataset is null or dataset = %s)",
            (correction.review_id, dataset),
        )
        found = cur.fetchone()
        if found is None:
            raise UnknownTarget(f"prediction {correction.review_id} is not in the review queue "
                                f"of {dataset}")  # fmt: skip
        if found[0] is not None:
            return found[0], None, None
        return None, found[1], found[2]
    cur.execute("select 1 from products where dataset = %s and product_id = %s",
                (dataset, correction.product_id))  # fmt: skip
    if cur.fetchone() is None:
        raise UnknownTarget(f"product {correction.product_id!r} does not exist in {dataset}")
    return correction.product_id, None, None


def close_reviews(
    cur, dataset: str, product_id: str | None, review_id: int | None, when: datetime
) -> None:
    """Mark reviewed the queued answer corrected, and every open one about the same listing."""
    cur.execute(
        "update review_queue set reviewed_at = %s where reviewed_at is null and (id = %s "
        "or (dataset = %s and product_id = %s))",
        (when, review_id, dataset, product_id),
    )
