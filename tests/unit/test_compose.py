"""docker-compose.yml is validated offline: there is no Docker engine on these machines."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ONE_SHOT = {"airflow-init", "minio-init", "mlflow-init"}


def test_compose_file_matches_the_compose_spec():
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_whole_platform_is_there():
    expected = {
        "postgres", "minio", "mlflow", "airflow-init", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "api", "prometheus", "grafana",
        "statsd-exporter",
    }  # fmt: skip
    assert expected <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name):
    image = SERVICES[name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and tag, f"{name}: {image} has no tag"
    assert tag != "latest" and "@" not in repository


@pytest.mark.parametrize("name", sorted(set(SERVICES) - ONE_SHOT))
def test_every_long_running_service_has_a_healthcheck(name):
    check = SERVICES[name].get("healthcheck", {})
    assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_wait_for_health_or_completion(name):
    depends = SERVICES[name].get("depends_on", {})
    assert isinstance(depends, dict), f"{name}: depends_on must carry conditions"
    for dependency, spec in depends.items():
        wanted = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
        assert spec["condition"] == wanted, f"{name} -> {dependency}"


def test_state_lives_in_named_volumes():
    named = set(COMPOSE["volumes"])
    for name in ("postgres", "minio", "prometheus", "grafana"):
        mounts = [v.split(":")[0] for v in SERVICES[name]["volumes"]]
        assert named & set(mounts), f"{name} keeps no named volume"


def test_services_get_the_same_prodcat_settings_as_the_native_stack():
    dotenv_keys = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env").read_text().splitlines()
        if line.startswith("PRODCAT_")
    }
    for name in ("api", "airflow-scheduler"):
        assert SERVICES[name]["env_file"] == ".env"
        env = SERVICES[name]["environment"]
        assert env["PRODCAT_POSTGRES__HOST"] == "postgres"
        assert set(k for k in env if k.startswith("PRODCAT_")) <= dotenv_keys | {
            "PRODCAT_API__HOST", "PRODCAT_DATA__RAW_DIR", "PRODCAT_MLFLOW__SIGN_IN_AS",
        }  # fmt: skip


def test_built_images_have_their_dockerfiles():
    for name, spec in SERVICES.items():
        if "build" in spec:
            build = spec["build"]
            dockerfile = ROOT / build["context"] / build.get("dockerfile", "Dockerfile")
            assert dockerfile.exists(), f"{name}: {dockerfile} missing"


def test_api_dockerfile_is_slim_non_root_and_health_checked():
    text = (ROOT / "Dockerfile.api").read_text()
    assert "-slim" in text
    assert "\nUSER prodcat" in text
    assert "HEALTHCHECK" in text


def test_the_api_gets_the_read_only_s3_user_that_minio_init_creates():
    api = SERVICES["api"]["environment"]
    for name in ("PRODCAT_S3__ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        assert api[name] == "${PRODCAT_S3__READER_ACCESS_KEY}"
    for name in ("PRODCAT_S3__SECRET_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert api[name] == "${PRODCAT_S3__READER_SECRET_KEY}"
    init = SERVICES["minio-init"]
    assert init["environment"]["READER_ACCESS_KEY"] == "${PRODCAT_S3__READER_ACCESS_KEY}"
    script = init["command"][0]
    assert 'mc admin user add prodcat "$$READER_ACCESS_KEY" "$$READER_SECRET_KEY"' in script
    assert 'mc admin policy attach prodcat readonly --user "$$READER_ACCESS_KEY"' in script
    assert SERVICES["airflow-scheduler"]["environment"]["AWS_ACCESS_KEY_ID"] == (
        "${PRODCAT_S3__ACCESS_KEY}"
    )


def test_the_api_signs_in_to_mlflow_as_the_read_only_user_that_mlflow_init_makes():
    api = SERVICES["api"]
    assert api["environment"]["PRODCAT_MLFLOW__SIGN_IN_AS"] == "reader"
    assert api["environment"]["MLFLOW_TRACKING_USERNAME"] == "${PRODCAT_MLFLOW__READER_USER}"
    assert api["environment"]["MLFLOW_TRACKING_PASSWORD"] == "${PRODCAT_MLFLOW__READER_PASSWORD}"
    assert api["depends_on"]["mlflow-init"]["condition"] == "service_completed_successfully"
    init = SERVICES["mlflow-init"]
    assert init["command"] == ["prodcat", "mlflow", "add-reader"]
    assert init["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert SERVICES["airflow-scheduler"]["environment"]["MLFLOW_TRACKING_USERNAME"] == (
        "${PRODCAT_MLFLOW__ADMIN_USER}"
    )
