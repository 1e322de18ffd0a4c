"""Reference and current frames: one row per listing, one column per thing compared."""

from __future__ import annotations

import pandas as pd

from prodcat.drift.descriptors import DESCRIPTOR_COLUMNS, Vocabulary, describe_texts, join_text


def reference_frame(snapshot: pd.DataFrame, outputs: pd.DataFrame) -> pd.DataFrame:
    """Descriptors and labels of the snapshot sample, then the outputs on held-out rows."""
    described = describe_listings(snapshot).assign(label=snapshot["label_code"].to_numpy())
    return pd.concat([described, outputs.drop(columns="product_id")], ignore_index=True)


def current_frame(
    window: str, rows: pd.DataFrame, vocabulary: Vocabulary
) -> tuple[pd.DataFrame, list[str]]:
    """A window's rows as the columns it is checked on, and the names of those columns."""
    if window == "new_data":
        current = add_oov(describe_listings(rows), rows, vocabulary)
        return current.assign(label=rows["label_code"].to_numpy()), [
            *DESCRIPTOR_COLUMNS, "oov_share", "label",
        ]  # fmt: skip
    outputs = rows[["predicted_category", "confidence"]].reset_index(drop=True)
    if rows["title"].isna().all():  # raw text is not logged: the model's outputs only
        return outputs, ["predicted_category", "confidence"]
    rows = rows.fillna({"title": "", "description": ""})
    current = pd.concat([add_oov(describe_listings(rows), rows, vocabulary), outputs], axis=1)
    return current, [*DESCRIPTOR_COLUMNS, "oov_share", "predicted_category", "confidence"]


def usable_columns(reference: pd.DataFrame, current: pd.DataFrame, wanted: list[str]) -> list[str]:
    """The wanted columns that both frames have values for."""
    return [
        c for c in wanted
        if c in reference and reference[c].notna().any() and current[c].notna().any()
    ]  # fmt: skip


def describe_listings(rows: pd.DataFrame) -> pd.DataFrame:
    """Text descriptors of listings with title and description columns."""
    texts = [join_text(t, d) for t, d in zip(rows["title"], rows["description"], strict=True)]
    return describe_texts(texts)


def add_oov(frame: pd.DataFrame, rows: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """The frame with the out-of-vocabulary share of each of its listings."""
    titles, descriptions = rows["title"].fillna(""), rows["description"].fillna("")
    return frame.assign(oov_share=vocabulary.oov_shares(titles.tolist(), descriptions.tolist()))


def predict_outputs(model, rows: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """Predicted category, confidence and out-of-vocabulary share of each listing."""
    probabilities = model.predict_proba(rows[["title", "description"]])
    outputs = pd.DataFrame({
        "predicted_category": model.classes_[probabilities.argmax(axis=1)].astype(str),
        "confidence": probabilities.max(axis=1),
    })  # fmt: skip
    return add_oov(outputs, rows, vocabulary)
