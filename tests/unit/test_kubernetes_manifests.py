"""The API's Kubernetes manifests (deploy/kubernetes/api) validate offline against the
Kubernetes API schemas, and say what the API needs: probes on /ready and /health, every
secret setting from the Secret, resources sized."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from prodcat.config import Settings, iter_secrets

API = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "api"
KUBERNETES = "1.33.0"
KUSTOMIZATION = yaml.safe_load((API / "kustomization.yaml").read_text())


def manifest(kind: str) -> dict:
    found = [d for f in KUSTOMIZATION["resources"]
             for d in yaml.safe_load_all((API / f).read_text()) if d["kind"] == kind]  # fmt: skip
    assert len(found) == 1, kind
    return found[0]


@pytest.mark.parametrize("name", KUSTOMIZATION["resources"])
def test_each_manifest_validates_strictly(name):
    for document in yaml.safe_load_all((API / name).read_text()):
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_a_manifest_with_a_mistake_is_refused():
    broken = {**manifest("Deployment"), "spec": {**manifest("Deployment")["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_every_kind_the_api_needs_is_there():
    kinds = {d["kind"] for f in KUSTOMIZATION["resources"]
             for d in yaml.safe_load_all((API / f).read_text())}  # fmt: skip
    assert kinds == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
                     "PodDisruptionBudget"}  # fmt: skip
    assert manifest("HorizontalPodAutoscaler")["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_the_pod_is_probed_sized_and_given_every_secret():
    container = manifest("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]
    secret = next(s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s)
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    referenced = {ref["key"] for ref in refs if ref["name"] == secret}
    documented = {line.split("=")[0] for line in (API / "secrets.example.env").read_text()
                  .splitlines() if line and not line.startswith("#")}  # fmt: skip
    needed = {"PRODCAT_" + name.upper().replace(".", "__")
              for name, _ in iter_secrets(Settings(_env_file=None, environment="dev"))}  # fmt: skip
    assert needed <= documented and referenced <= documented
