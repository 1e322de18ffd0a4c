"""The OpenAPI document, with the size limits that come from settings written into it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from prodcat.config import Settings
from prodcat.serving.budget import RAW_MARKUP_FACTOR
from prodcat.serving.schemas import NON_BLANK


def document_limits(app: FastAPI, settings: Settings) -> None:
    """Make /openapi.json state the limits the validators enforce, so clients (and fuzzers)
    know that a 1,001-character title or an 11th top-k category will be refused."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)  # fmt: skip
            _write_limits(spec, settings)
            _write_links(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi


def _write_limits(spec: dict[str, Any], settings: Settings) -> None:
    schemas = spec["components"]["schemas"]
    item = schemas["PredictRequest"]["properties"]
    # The schema can state raw lengths only; the limits after cleaning are in the descriptions.
    item["title"].update(pattern=NON_BLANK,
                         maxLength=settings.data.max_title_chars * RAW_MARKUP_FACTOR)  # fmt: skip
    for option in item["description"].get("anyOf", []):
        if option.get("type") == "string":
            option["maxLength"] = settings.data.max_description_chars * RAW_MARKUP_FACTOR
    items = schemas["BatchPredictRequest"]["properties"]["items"]
    items.update(minItems=1, maxItems=settings.api.max_batch_items)
    for path in ("/predict/", "/predict/batch"):
        for parameter in spec["paths"][path]["post"].get("parameters", []):
            if parameter["name"] == "top_k":
                parameter["schema"]["maximum"] = settings.api.max_top_k


def _write_links(spec: dict[str, Any]) -> None:
    """How the operations follow one another: after a reload, the model and predictions
    change. The links say so, and give schemathesis' stateful phase sequences to try."""
    operations = {path: next(iter(methods.values())) for path, methods in spec["paths"].items()}
    follows = {
        "/admin/reload": ["/model", "/predict/"],
        "/predict/": ["/model", "/predict/batch"],
        "/model": ["/admin/reload", "/predict/"],
        "/predict/batch": ["/admin/reload"],
    }
    for source, targets in follows.items():
        response = operations[source]["responses"]["200"]
        response["links"] = {
            f"then {operations[t]['operationId']}": {"operationId": operations[t]["operationId"]}
            for t in targets
        }
