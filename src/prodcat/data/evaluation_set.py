"""The evaluation set: a seeded, label-stratified sample of the source that training never sees.

It is carved before anything else is ingested, by the first ingestion of an empty dataset or by
reset_data, so no model can ever be trained on its rows.
"""

from __future__ import annotations

import logging

import pandas as pd
from psycopg2.extras import execute_values
from sklearn.model_selection import train_test_split

from prodcat.config import Settings
from prodcat.data.dataset import DatasetSpec, iter_source
from prodcat.data.validate import Limits, find_rejections

log = logging.getLogger(__name__)


def carve_evaluation_set(
    source: pd.DataFrame,
    spec: DatasetSpec,
    settings: Settings,
    label_names: dict[str, str] | None,
) -> pd.DataFrame:
    """A seeded, label-stratified sample of valid rows that training must never see."""
    limits = Limits(settings.data.max_title_chars, settings.data.max_description_chars)
    reasons = find_rejections(source, limits, set(label_names) if label_names else None, set())
    valid = source[reasons == ""]
    # Stratifying needs two rows per label; rarer labels stay in the stream.
    counts = valid["label"].value_counts()
    valid = valid[valid["label"].isin(counts[counts >= 2].index)]
    size = settings.data.eval_size
    if size == 0:
        return valid.iloc[:0]
    if size > len(valid) // 2:
        raise ValueError(
            f"eval_size {size} is more than half of the {len(valid)} valid rows of {spec.name}; "
            "lower PRODCAT_DATA__EVAL_SIZE"
        )
    _, held_out = train_test_split(
        valid, test_size=size, stratify=valid["label"], random_state=settings.data.seed
    )
    return held_out.sort_values("source_row")


def store_evaluation_set(
    cur, spec: DatasetSpec, settings: Settings, label_names: dict[str, str] | None
) -> tuple[int, int]:
    """Carve the evaluation set from the whole source and insert it with the cursor `cur`
    (the caller's transaction); returns (source rows, held-out rows)."""
    source = pd.concat(list(iter_source(spec, settings.data.raw_dir)), ignore_index=True)
    held_out = carve_evaluation_set(source, spec, settings, label_names)
    values = [
        (spec.name, r.product_id, r.title, r.description, r.label, r.image_path, int(r.source_row))
        for r in held_out.itertuples()
    ]
    execute_values(
        cur,
        """insert into evaluation_set
           (dataset, product_id, title, description, label_code, image_path, source_row)
           values %s""",
        values,
        page_size=1000,
    )
    log.info("%s: %d of %d source rows held out as the evaluation set",
             spec.name, len(held_out), len(source))  # fmt: skip
    return len(source), len(held_out)


def has_evaluation_set(cur, dataset: str) -> bool:
    """Whether the dataset's evaluation set was carved."""
    cur.execute("select exists (select 1 from evaluation_set where dataset = %s)", (dataset,))
    return bool(cur.fetchone()[0])
