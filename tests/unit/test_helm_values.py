"""deploy/helm/airflow-values.yaml, the official Airflow chart's values for prodcat, checked
offline: against prodcat's schema of the chart's values (chart 1.21.0), its Kubernetes parts
against the Kubernetes schemas, and for what prodcat needs from it (its image with the DAGs,
every setting and secret, its statsd mapping)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from prodcat.config import Settings, iter_secrets
from tests.monitoring import MONITORING
from tests.unit.test_kubernetes_manifests import API, KUBERNETES, manifest

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "deploy" / "helm"
VALUES_FILE = HELM / "airflow-values.yaml"
VALUES = yaml.safe_load(VALUES_FILE.read_text())
ENV = {item["name"]: item["value"] for item in VALUES["env"]}
COMPONENTS = ["apiServer", "scheduler", "dagProcessor", "triggerer", "statsd"]


def check_values(path: Path) -> subprocess.CompletedProcess:
    checker = Path(sys.executable).parent / "check-jsonschema"
    schema = HELM / "airflow-values.schema.json"
    return subprocess.run(
        [str(checker), "--schemafile", str(schema), str(path)], capture_output=True, text=True
    )


def component(name: str) -> dict:
    """A component's values; task pods are the KubernetesExecutor's `workers.kubernetes`."""
    return VALUES["workers"]["kubernetes"] if name == "workers" else VALUES[name]


def pod(values: dict, name: str) -> dict:
    """A Pod made of a component's Kubernetes parts, as the chart puts them in its pods."""
    container = {"name": name, "image": "prodcat/airflow:0.1.0",
                 "resources": values["resources"],
                 "volumeMounts": values.get("extraVolumeMounts", [])}  # fmt: skip
    spec = {"containers": [container], "volumes": values.get("extraVolumes", []),
            "initContainers": values.get("extraInitContainers", [])}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_the_values_match_the_charts_values():
    result = check_values(VALUES_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mistake", "fixed"),
    [
        ("jwtSecretName:", "jwtSecretNam:"),
        ("executor: KubernetesExecutor", "executor: KubernetesExecuter"),
        ('    resources:\n      requests: {cpu: "1"', '    resource:\n      requests: {cpu: "1"'),
        ("  metadataSecretName:", "  metadataSecret:"),
    ],
)
def test_a_value_with_a_mistake_is_refused(tmp_path, mistake, fixed):
    text = VALUES_FILE.read_text()
    assert mistake in text
    broken = tmp_path / "values.yaml"
    broken.write_text(text.replace(mistake, fixed, 1))
    result = check_values(broken)
    assert result.returncode == 1 and fixed.split(":")[0].strip() in result.stdout


@pytest.mark.parametrize("name", [*COMPONENTS, "workers"])
def test_each_pods_kubernetes_parts_validate_strictly(name):
    kubernetes_validate.validate(pod(component(name), name.lower()), KUBERNETES, strict=True)


def test_a_kubernetes_part_with_a_mistake_is_refused():
    workers = VALUES["workers"]["kubernetes"]
    volume = {**workers["extraVolumes"][0], "persistentVolumeClaim": {"claimNam": "x"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            pod({**workers, "extraVolumes": [volume]}, "base"), KUBERNETES, strict=True
        )


@pytest.mark.parametrize("name", [*COMPONENTS, "workers"])
def test_every_pod_asks_for_cpu_and_memory_and_has_a_memory_ceiling(name):
    resources = component(name)["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert mebibytes(resources["requests"]["memory"]) <= mebibytes(resources["limits"]["memory"])


def mebibytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
    return int(number) * (1024 if unit == "Gi" else 1)


def test_tasks_run_in_pods_of_prodcats_image_with_the_dags_baked_in():
    assert VALUES["executor"] == "KubernetesExecutor"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    image = f"{VALUES['defaultAirflowRepository']}:{VALUES['defaultAirflowTag']}"
    assert image == compose["services"]["airflow-scheduler"]["image"]
    dockerfile = (ROOT / "containers" / "airflow" / "Dockerfile").read_text()
    assert f"FROM apache/airflow:{VALUES['airflowVersion']}-" in dockerfile
    # The chart's DAG folder, $AIRFLOW_HOME/dags, when neither git-sync nor a volume is on.
    assert "\nCOPY --chown=airflow:root dags /opt/airflow/dags\n" in dockerfile
    assert not VALUES["dags"]["gitSync"]["enabled"] and not VALUES["dags"]["persistence"]["enabled"]


def test_the_database_and_airflows_keys_come_from_existing_secrets():
    assert VALUES["postgresql"]["enabled"] is False
    assert VALUES["data"] == {"metadataSecretName": "airflow-metadata"}
    for name in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert VALUES[name]
    assert not {"fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"} & set(VALUES)


def test_every_component_gets_prodcats_settings_and_every_secret_from_the_apis_secret():
    api_secret = next(s["secretRef"]["name"] for s in manifest("Deployment")["spec"]["template"]
                      ["spec"]["containers"][0]["envFrom"] if "secretRef" in s)  # fmt: skip
    assert yaml.safe_load(VALUES["extraEnvFrom"]) == [{"secretRef": {"name": api_secret}}]
    fields = Settings.model_fields
    for name in (n for n in ENV if n.startswith("PRODCAT_")):
        group, _, field = name.removeprefix("PRODCAT_").lower().partition("__")
        assert field in fields[group].annotation.model_fields if field else group in fields, name
    dev = Settings(_env_file=None, environment="dev")
    secrets = {"PRODCAT_" + n.upper().replace(".", "__") for n, _ in iter_secrets(dev)}
    assert not secrets & set(ENV), "a secret in plain values"
    documented = (API / "secrets.example.env").read_text()
    for item in VALUES["secret"]:
        assert item["secretName"] == api_secret and f"\n{item['secretKey']}=" in documented


def test_statsd_exporter_reads_prodcats_mapping():
    mapping = yaml.safe_load((MONITORING / "statsd" / "mapping.yml").read_text())
    defaults = {k: mapping["defaults"][k] for k in ("observer_type", "histogram_options")}
    assert VALUES["statsd"]["overrideMappings"] == [{**defaults, **m} for m in mapping["mappings"]]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    image = "{repository}:{tag}".format(**VALUES["images"]["statsd"])
    assert image == compose["services"]["statsd-exporter"]["image"]
    # The chart's statsd Service is <release>-statsd; the release is `airflow`.
    assert ENV["PRODCAT_STATSD__HOST"].startswith("airflow-statsd.")


def test_the_api_servers_only_user_is_prodcats_admin_with_its_password_from_the_secret():
    core = VALUES["config"]["core"]
    assert core["auth_manager"].endswith("simple_auth_manager.SimpleAuthManager")
    assert core["simple_auth_manager_users"] == f"{ENV['PRODCAT_AIRFLOW__ADMIN_USER']}:admin"
    [init] = VALUES["apiServer"]["extraInitContainers"]
    env = {e["name"]: e for e in init["env"]}
    assert env["PRODCAT_AIRFLOW__ADMIN_USER"]["value"] == ENV["PRODCAT_AIRFLOW__ADMIN_USER"]
    assert env["PRODCAT_AIRFLOW__ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == (
        "PRODCAT_AIRFLOW__ADMIN_PASSWORD"
    )
    passwords = Path(core["simple_auth_manager_passwords_file"])
    assert passwords.as_posix() in init["command"][-1]
    mounts = {m["mountPath"]: m["name"] for m in VALUES["apiServer"]["extraVolumeMounts"]}
    assert mounts[str(passwords.parent)] == init["volumeMounts"][0]["name"]
    assert VALUES["createUserJob"] == {"enabled": False}


def test_the_migration_job_migrates_prodcats_database_too():
    assert VALUES["migrateDatabaseJob"]["args"][-1] == (
        "airflow db migrate && exec prodcat db upgrade"
    )
