"""Schema-driven fuzzing: whatever schemathesis makes of the OpenAPI spec, no 500.

Every route is in the spec (/metrics too), so every route is fuzzed: the examples, coverage
and fuzzing phases, each with valid (positive) and invalid (negative) data, and the stateful
phase, which follows the spec's links (predict, then reload, then predict...). Each runs
without the admin token and with it, so /admin/reload is reached both ways.
"""

from __future__ import annotations

import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode

from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel

from ..models import train_small_model
from .conftest import settings_without_log

MODEL = LoadedModel(train_small_model(), "7", "registry", {})
APP_SETTINGS = settings_without_log()
TOKEN = APP_SETTINGS.api.admin_token.get_secret_value()
APP = create_app(APP_SETTINGS, loader=lambda s: MODEL, probe=lambda s: "7", poll=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
# 503 is an answer the spec documents (no model, too busy, /drift without its database, as
# here); any other 5xx fails.
schema.config.checks.not_a_server_error.expected_statuses = ["1xx", "2xx", "3xx", "4xx", "503"]
# A body past PRODCAT_API__MAX_BODY_BYTES is refused as it should be, with a 413.
rejections = schema.config.checks.negative_data_rejection
rejections.expected_statuses = [*rejections.expected_statuses, "413"]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def test_every_route_is_in_the_spec():
    routes = {route.path for route in APP.routes if isinstance(route, APIRoute)}
    assert "/metrics" in routes and routes == set(schema.raw_schema["paths"])


@schema.parametrize()
@FUZZ
def test_generated_requests_never_get_a_server_error(case):
    case.call_and_validate()


# With a token always added, schemathesis counts "no Authorization header" as negative data
# the API accepted; GET /review's validation is tested on its own (test_review.py).
@schema.exclude(path="/review", method="GET").parametrize()
@FUZZ
def test_generated_requests_with_the_admin_token_never_get_a_server_error(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})


class Anonymous(schema.as_state_machine()):
    pass


class Operator(schema.as_state_machine()):
    def get_call_kwargs(self, case) -> dict:
        return {"headers": {"Authorization": f"Bearer {TOKEN}"}}


STATEFUL = settings(max_examples=30, stateful_step_count=6, deadline=None,
                    suppress_health_check=list(HealthCheck))  # fmt: skip
TestStatefulWithoutToken = Anonymous.TestCase
TestStatefulWithoutToken.settings = STATEFUL
TestStatefulWithToken = Operator.TestCase
TestStatefulWithToken.settings = STATEFUL
