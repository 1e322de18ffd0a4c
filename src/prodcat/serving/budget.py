"""The cost budget of a request, counted on what the model reads.

A prediction's memory and time grow with the characters of the documents the model's
cleaner makes, not with the raw text: NFKD turns U+FDFA into 18 characters, HTML entities
and tags shrink. So each request is cleaned once, here, measured, refused when over budget,
and its documents go on to the model as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError

from prodcat.config import Settings
from prodcat.serving.schemas import PredictRequest
from prodcat.training.features import ProductTextCleaner

# Raw text may carry markup and entities that cleaning removes (listings do), so the raw
# length may exceed the cleaned limit by this factor; it bounds the cost of cleaning itself.
RAW_MARKUP_FACTOR = 4


@dataclass(frozen=True)
class Limits:
    title_chars: int
    description_chars: int
    request_chars: int
    batch_items: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.data.max_title_chars, settings.data.max_description_chars,
                   settings.api.max_request_chars, settings.api.max_batch_items)  # fmt: skip


class RequestTooLarge(HTTPException):
    """413: the request's documents exceed PRODCAT_API__MAX_REQUEST_CHARS."""

    def __init__(self, measured: int, limit: int):
        super().__init__(413, detail=(
            f"the request has {measured} characters after cleaning; the limit is {limit} "
            f"(PRODCAT_API__MAX_REQUEST_CHARS): send fewer or shorter items"))  # fmt: skip


def clean_items(
    cleaner: ProductTextCleaner, items: list[PredictRequest], limits: Limits, loc: tuple
) -> list[str]:
    """The model's documents for items; 422 for a field over its limit, 413 over the total.

    loc is where the items sit in the body: ("body",) for one item, ("body", "items") for a
    batch. Past the request's limit the documents are only counted, not kept.
    """
    docs, errors, total = [], [], 0
    for index, item in enumerate(items):
        where = loc if len(loc) == 1 else (*loc, index)
        raw = (item.title, item.description or "")
        too_long = length_errors(raw, limits, where, RAW_MARKUP_FACTOR, "before cleaning")
        if not too_long:
            cleaned = cleaner.clean_fields(*raw)
            too_long = length_errors(cleaned, limits, where, 1, "after cleaning")
        if too_long:
            errors += too_long
            continue
        doc = cleaner.compose(*cleaned)
        total += len(doc)
        if total <= limits.request_chars:
            docs.append(doc)
    if errors:
        raise RequestValidationError(errors)
    if total > limits.request_chars:
        raise RequestTooLarge(total, limits.request_chars)
    return docs


def length_errors(
    fields: tuple[str, str], limits: Limits, where: tuple, factor: int, when: str
) -> list[dict]:
    """422 entries for the title or description longer than factor times its limit."""
    errors, caps = [], (limits.title_chars, limits.description_chars)
    for name, value, limit in zip(("title", "description"), fields, caps, strict=True):
        if len(value) > limit * factor:
            errors.append({
                "type": "string_too_long", "loc": (*where, name), "input": value,
                "ctx": {"max_length": limit * factor},
                "msg": f"{name} must be at most {limit * factor} characters {when} "
                       f"(got {len(value)})",
            })  # fmt: skip
    return errors


def check_batch_size(items: list, limits: Limits) -> None:
    """422 for an empty batch or one over PRODCAT_API__MAX_BATCH_ITEMS."""
    if not items or len(items) > limits.batch_items:
        message = (f"items must hold at most {limits.batch_items} items (got {len(items)})"
                   if items else "items must hold at least one item")  # fmt: skip
        raise RequestValidationError([{
            "type": "too_short" if not items else "too_long", "loc": ("body", "items"),
            "msg": message, "input": None, "ctx": {"max_length": limits.batch_items},
        }])  # fmt: skip
