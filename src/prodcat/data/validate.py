"""Row checks: every rejected row keeps its reason; nothing is dropped silently."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

# Lone surrogates come from undecodable bytes (read with surrogateescape); U+FFFD from an
# earlier lossy decode; C0 controls (but tab/newline) never belong in a product listing.
BROKEN_TEXT = re.compile(r"[\ud800-\udfff\ufffd\x00-\x08\x0b\x0c\x0e-\x1f]")


class Reason:
    EMPTY_TITLE = "empty_title"
    MISSING_LABEL = "missing_label"
    UNKNOWN_LABEL = "unknown_label"
    TOO_LONG = "too_long"
    BAD_ENCODING = "bad_encoding"
    DUPLICATE_ID = "duplicate_id"
    MALFORMED_ROW = "malformed_row"
    BAD_IMAGE_PATH = "bad_image_path"


@dataclass(frozen=True)
class Limits:
    max_title_chars: int
    max_description_chars: int


def find_rejections(
    rows: pd.DataFrame,
    limits: Limits,
    known_labels: set[str] | None,
    existing_ids: set[str],
    keep_unlabelled: bool = False,
) -> pd.Series:
    """The reason each row is rejected ('' when accepted), first failing check wins.

    With keep_unlabelled, a row without a label is accepted, as a listing awaiting a category."""
    reasons = pd.Series("", index=rows.index, dtype=object)

    def mark(mask: pd.Series, reason: str) -> None:
        reasons[(reasons == "") & mask] = reason

    if "malformed" in rows:
        mark(rows["malformed"].notna(), Reason.MALFORMED_ROW)
    text = rows["title"] + rows["description"] + rows["label"] + rows["product_id"]
    mark(text.str.contains(BROKEN_TEXT), Reason.BAD_ENCODING)
    mark(rows["title"] == "", Reason.EMPTY_TITLE)
    unlabelled = rows["label"] == ""
    if not keep_unlabelled:
        mark(unlabelled, Reason.MISSING_LABEL)
    if known_labels is not None:
        mark(~rows["label"].isin(known_labels) & ~unlabelled, Reason.UNKNOWN_LABEL)
    too_long = (rows["title"].str.len() > limits.max_title_chars) | (
        rows["description"].str.len() > limits.max_description_chars
    )
    mark(too_long, Reason.TOO_LONG)
    if "image_error" in rows:
        mark(rows["image_error"] != "", Reason.BAD_IMAGE_PATH)
    mark(rows["product_id"] == "", Reason.DUPLICATE_ID)  # an empty id cannot be unique
    # Only rows still accepted count as the first occurrence of their id.
    seen_in_batch = rows["product_id"].where(reasons == "").duplicated(keep="first")
    mark(rows["product_id"].isin(existing_ids) | seen_in_batch, Reason.DUPLICATE_ID)
    return reasons


def describe_rejection(row: pd.Series, reason: str, limits: Limits) -> str:
    """A human-readable detail for one rejected row."""
    if reason == Reason.TOO_LONG:
        return (
            f"title {len(row['title'])}/{limits.max_title_chars} chars, "
            f"description {len(row['description'])}/{limits.max_description_chars} chars"
        )
    if reason in (Reason.UNKNOWN_LABEL, Reason.MISSING_LABEL):
        return f"label {safe_text(row['label'])!r}"
    if reason == Reason.MALFORMED_ROW:
        return f"the CSV parser could not split this record: {safe_text(row['malformed'])[:200]!r}"
    if reason == Reason.BAD_IMAGE_PATH:
        return f"image {safe_text(row['image_error'])!r} is outside the image folder"
    if reason == Reason.DUPLICATE_ID:
        return f"id {safe_text(row['product_id'])!r} already loaded or repeated in this batch"
    return reason.replace("_", " ")


def safe_text(value: object) -> object:
    """Text that PostgreSQL will store: undecodable bytes become U+FFFD."""
    if isinstance(value, str):
        return (
            value.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "")
        )
    return value
