"""Test-wide settings: the tests run their own stack, beside (not on top of) a developer's one."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# PRODCAT_TEST_PORT_OFFSET (e.g. 10100) lets a second checkout run its own test stack.
TEST_PORT_OFFSET = int(os.environ.get("PRODCAT_TEST_PORT_OFFSET", "100"))

# Applied before anything reads settings, so every test, fixture and child process agrees.
os.environ.setdefault("PRODCAT_STATE_DIR", str(ROOT / ".state-test"))
# The code defaults to production (placeholder secrets refused); tests run with .env's dev ones.
os.environ.setdefault("PRODCAT_ENVIRONMENT", "dev")
os.environ.setdefault("PRODCAT_AIRFLOW__DAGS_PAUSED_AT_CREATION", "true")
os.environ.setdefault("PRODCAT_TRAINING__PROFILE", "fast")
# Two 2,000-row batches of the designations file are enough to train on in tests.
os.environ.setdefault("PRODCAT_TRAINING__MIN_ROWS", "3000")


def port_overrides(offset: int) -> dict[str, str]:
    """PRODCAT_* variables that move every port of the stack by offset."""
    from prodcat.config import Settings

    defaults = Settings(_env_file=None)
    env = {}
    for group_name in type(defaults).model_fields:
        group = getattr(defaults, group_name)
        for field_name in getattr(type(group), "model_fields", {}):
            if field_name == "port" or field_name.endswith("_port"):
                key = f"PRODCAT_{group_name.upper()}__{field_name.upper()}"
                env[key] = str(getattr(group, field_name) + offset)
    return env


for _key, _value in port_overrides(TEST_PORT_OFFSET).items():
    os.environ.setdefault(_key, _value)


def _export_airflow_config() -> None:
    """Point in-process Airflow (DagBag, dag.test()) at the test stack's metadata database."""
    from prodcat.config import Settings
    from prodcat.stack.airflow import airflow_env
    from prodcat.stack.service import resolve_paths

    settings = Settings()
    for key, value in airflow_env(settings, resolve_paths(settings, ROOT), {}).items():
        os.environ.setdefault(key, value)


_export_airflow_config()
