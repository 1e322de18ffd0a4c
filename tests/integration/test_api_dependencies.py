"""Dockerfile.api installs only requirements-api.txt: that set must be enough to serve.

Builds a virtualenv from requirements-api.txt plus the package (no Airflow, no Evidently),
as the image does, and serves the real registry's champion from it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ..models import ROOT, api_server, register_small_models

pytestmark = pytest.mark.integration
MODEL_NAME = "prodcat-slim-api-test"


def test_the_dockerfile_installs_the_api_requirements():
    dockerfile = (ROOT / "Dockerfile.api").read_text()
    assert "requirements-api.txt" in dockerfile and "requirements.txt ." not in dockerfile
    pinned = re.findall(r"^([a-z0-9_.-]+)==", (ROOT / "requirements-api.txt").read_text(), re.M)
    assert {"mlflow-skinny", "scikit-learn", "fastapi", "uvicorn"} <= set(pinned)
    assert not {"apache-airflow", "evidently", "mlflow", "schemathesis"} & set(pinned)


def test_the_api_serves_from_the_slim_requirements(settings, tmp_path):
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", str(venv), "--python", sys.executable], check=True)
    install = {**os.environ, "VIRTUAL_ENV": str(venv)}
    subprocess.run([uv, "pip", "install", "-q", "-r", str(ROOT / "requirements-api.txt")],
                   check=True, env=install)  # fmt: skip
    subprocess.run([uv, "pip", "install", "-q", "--no-deps", str(ROOT)], check=True, env=install)

    version = register_small_models(settings, MODEL_NAME, 1)[0]
    env = {**os.environ, "PRODCAT_MLFLOW__MODEL_NAME": MODEL_NAME,
           "PRODCAT_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    port = settings.api.port + 38
    # Two workers, as the image runs them: the supervisor works from the slim install too.
    with api_server(venv / "bin", port, env, tmp_path / "api.log", workers=2) as url:
        answer = httpx.post(f"{url}/predict/", json={"title": "piscine ronde"}).json()
        assert answer["model_version"] == version and answer["category_code"] == "2583"
        assert "prodcat_api_requests_total" in httpx.get(f"{url}/metrics").text
