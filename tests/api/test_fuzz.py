"""Schema-driven fuzzing: whatever schemathesis generates from the OpenAPI spec, no 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel

from ..models import train_small_model
from .conftest import settings_without_log

MODEL = LoadedModel(train_small_model(), "7", "registry", {})
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(settings_without_log(), loader=lambda s: MODEL, poll=False),
)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_never_get_a_server_error(case):
    case.call_and_validate()
