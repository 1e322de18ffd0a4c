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
DOTENV = dict(
    line.split("=", 1)
    for line in (ROOT / ".env").read_text().splitlines()
    if line and not line.startswith("#")
)
CELERY_SERVICES = {"redis", "airflow-worker", "airflow-scheduler-celery"}


def test_compose_file_matches_the_compose_spec():
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def enabled_services(profile_flags: list[str]) -> dict[str, dict]:
    """The services `docker compose [--profile P]... up` starts, by compose's own rules.

    Any --profile flag replaces COMPOSE_PROFILES (read from the shell, then .env) rather
    than adding to it (compose-go's cli.WithDefaultProfiles); a service without profiles
    always runs, one with profiles runs when any of them is active.
    """
    active = set(profile_flags) or set(DOTENV.get("COMPOSE_PROFILES", "").split(",")) - {""}
    return {
        name: spec
        for name, spec in SERVICES.items()
        if not spec.get("profiles") or active & set(spec["profiles"])
    }


def schedulers(services: dict[str, dict]) -> list[dict]:
    return [spec for spec in services.values() if spec.get("command") == ["airflow", "scheduler"]]


def test_the_whole_platform_is_there():
    expected = {
        "postgres", "minio", "mlflow", "airflow-init", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "api", "prometheus", "grafana",
        "statsd-exporter",
    }  # fmt: skip
    assert set(enabled_services([])) == set(SERVICES) - CELERY_SERVICES
    assert expected <= set(enabled_services([]))


@pytest.mark.parametrize(
    ("flags", "executor"), [([], "LocalExecutor"), (["celery"], "CeleryExecutor")]
)
def test_the_profile_alone_decides_the_schedulers_executor(flags, executor):
    [scheduler] = schedulers(enabled_services(flags))
    assert scheduler["environment"]["AIRFLOW__CORE__EXECUTOR"] == executor


def test_the_celery_profile_adds_redis_and_workers_and_keeps_the_rest():
    assert set(enabled_services(["celery"])) == set(SERVICES) - {"airflow-scheduler"}
    assert SERVICES["redis"]["image"].startswith("redis:7.2.")


@pytest.mark.parametrize("flags", [[], ["celery"]])
def test_whatever_the_profile_every_dependency_starts_too(flags):
    services = enabled_services(flags)
    for name, spec in services.items():
        missing = set(spec.get("depends_on", {})) - set(services)
        assert not missing, f"{name} waits for {missing}, which this profile does not start"


@pytest.mark.parametrize("name", ["airflow-scheduler-celery", "airflow-worker"])
def test_celery_services_wait_for_a_healthy_redis_they_sign_in_to(name):
    spec = SERVICES[name]
    assert spec["depends_on"]["redis"]["condition"] == "service_healthy"
    env = spec["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:${PRODCAT_REDIS__PASSWORD}@redis:6379/0"
    assert SERVICES["redis"]["environment"]["REDISCLI_AUTH"] == "${PRODCAT_REDIS__PASSWORD}"
    assert "--requirepass" in SERVICES["redis"]["command"][-1]
    local = SERVICES["airflow-scheduler"]["environment"]
    assert {k: v for k, v in env.items() if k in local and k != "AIRFLOW__CORE__EXECUTOR"} == {
        k: v for k, v in local.items() if k != "AIRFLOW__CORE__EXECUTOR"
    }


def test_workers_scale_and_answer_celerys_ping():
    worker = SERVICES["airflow-worker"]
    assert worker["command"] == ["airflow", "celery", "worker"]
    assert worker["deploy"]["replicas"].startswith("${PRODCAT_AIRFLOW__CELERY_WORKERS:-")
    # A fixed name or host port would stop `--scale airflow-worker=N` from starting N.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert 'inspect ping -d "celery@$${HOSTNAME}"' in worker["healthcheck"]["test"][1]
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"


@pytest.mark.parametrize("name", sorted(set(SERVICES) - ONE_SHOT))
def test_every_long_running_service_is_restarted(name):
    assert SERVICES[name].get("restart") in {"unless-stopped", "always"}


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
    for name in ("api", "airflow-scheduler", "airflow-scheduler-celery", "airflow-worker"):
        assert SERVICES[name]["env_file"] == ".env"
        env = SERVICES[name]["environment"]
        assert env["PRODCAT_POSTGRES__HOST"] == "postgres"
        assert set(k for k in env if k.startswith("PRODCAT_")) <= dotenv_keys | {
            "PRODCAT_API__HOST", "PRODCAT_DATA__RAW_DIR", "PRODCAT_MLFLOW__SIGN_IN_AS",
            "PRODCAT_AIRFLOW__EXECUTOR", "PRODCAT_REDIS__HOST", "PRODCAT_REDIS__PORT",
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
