"""The serving input path on its own, with no app and no model: the documents a request
becomes, and the exact limits of its budget (serving/budget.py)."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError

from prodcat.serving.budget import (
    RAW_MARKUP_FACTOR,
    Limits,
    RequestTooLarge,
    check_batch_size,
    clean_items,
)
from prodcat.serving.schemas import PredictRequest
from prodcat.training.features import ProductTextCleaner

LIMITS = Limits(title_chars=10, description_chars=20, request_chars=100, batch_items=3)
CLEANER = ProductTextCleaner()


def item(title: str, description: str | None = None) -> PredictRequest:
    return PredictRequest(title=title, description=description)


def errors_of(items: list[PredictRequest], limits: Limits = LIMITS, loc=("body",)) -> list:
    with pytest.raises(RequestValidationError) as raised:
        clean_items(CLEANER, items, limits, loc)
    return raised.value.errors()


def test_each_item_becomes_the_cleaners_document_in_order():
    items = [item("<b>Jeu</b> Vidéo", "neuf&amp;complet"), item("Livre"), item("Été", "")]
    docs = clean_items(CLEANER, items, LIMITS, ("body", "items"))
    assert docs == [CLEANER.compose(*CLEANER.clean_fields(i.title, i.description or ""))
                    for i in items]  # fmt: skip
    assert docs[0] == "jeu video . jeu video . neuf&complet"
    assert docs[1] == "livre . livre" and docs[2] == "ete . ete"


@pytest.mark.parametrize("field, limit", [("title", 10), ("description", 20)])
def test_cleaned_lengths_are_inclusive_limits(field, limit):
    def one(chars: int) -> PredictRequest:
        return item("a" * chars) if field == "title" else item("t", "b" * chars)

    assert clean_items(CLEANER, [one(limit)], LIMITS, ("body",))
    (error,) = errors_of([one(limit + 1)])
    assert error["loc"] == ("body", field) and error["ctx"] == {"max_length": limit}
    assert error["type"] == "string_too_long"
    assert error["input"] == ("a" * (limit + 1) if field == "title" else "b" * (limit + 1))
    assert error["msg"] == (f"{field} must be at most {limit} characters after cleaning "
                            f"(got {limit + 1})")  # fmt: skip


def test_raw_lengths_allow_markup_up_to_the_factor_then_refuse_before_cleaning():
    cap = LIMITS.title_chars * RAW_MARKUP_FACTOR
    at_cap = "<b>" * (cap // 3) + "x" * (cap % 3)
    assert len(at_cap) == cap
    assert clean_items(CLEANER, [item(at_cap)], LIMITS, ("body",))
    (error,) = errors_of([item(at_cap + "x")])
    assert error["ctx"] == {"max_length": cap} and error["input"] == at_cap + "x"
    assert error["msg"] == f"title must be at most {cap} characters before cleaning (got {cap + 1})"


def test_two_defects_in_one_item_and_defects_in_two_items_are_all_reported_where_they_are():
    errors = errors_of([item("ok"), item("a" * 11, "b" * 21), item("c" * 11)],
                       loc=("body", "items"))  # fmt: skip
    assert [e["loc"] for e in errors] == [("body", "items", 1, "title"),
                                          ("body", "items", 1, "description"),
                                          ("body", "items", 2, "title")]  # fmt: skip


def test_the_request_budget_is_inclusive_and_names_the_measured_size():
    doc = CLEANER.compose(*CLEANER.clean_fields("abcdefghij", ""))  # 10 . 10 = 23 characters
    budget = Limits(10, 20, request_chars=len(doc) * 2, batch_items=3)
    assert len(clean_items(CLEANER, [item("abcdefghij")] * 2, budget, ("body", "items"))) == 2
    tight = Limits(10, 20, request_chars=len(doc) * 2 - 1, batch_items=3)
    with pytest.raises(RequestTooLarge) as raised:
        clean_items(CLEANER, [item("abcdefghij")] * 2, tight, ("body", "items"))
    assert raised.value.status_code == 413
    assert raised.value.detail.startswith(
        f"the request has {len(doc) * 2} characters after cleaning; the limit is {len(doc) * 2 - 1}"
    )


def test_a_field_error_wins_over_the_request_budget():
    tight = Limits(10, 20, request_chars=5, batch_items=3)
    (error,) = errors_of([item("abcdefghij"), item("a" * 11)], tight, ("body", "items"))
    assert error["loc"] == ("body", "items", 1, "title")


@pytest.mark.parametrize(
    "count, refused", [(0, "too_short"), (1, None), (3, None), (4, "too_long")]
)
def test_batch_size_limits(count, refused):
    if refused is None:
        check_batch_size([item("x")] * count, LIMITS)
        return
    with pytest.raises(RequestValidationError) as raised:
        check_batch_size([item("x")] * count, LIMITS)
    (error,) = raised.value.errors()
    assert error["type"] == refused and error["loc"] == ("body", "items")
    expected = "items must hold at least one item" if count == 0 else (
        f"items must hold at most 3 items (got {count})")  # fmt: skip
    assert error["msg"] == expected and error["ctx"] == {"max_length": 3}
    assert "input" in error and error["input"] is None
