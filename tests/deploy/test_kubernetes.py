"""deploy/kubernetes/: core manifests valid against the Kubernetes schemas (offline, strict: unknown
fields are errors), Prometheus Operator objects against a schema of the fields we use, and the pieces
consistent with each other, with the image and with the exporter."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient

from probe_exporter.config import load_config
from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.support.deploy_tools import DEPLOY, REPO

K8S = DEPLOY / "kubernetes"
CORE_MANIFESTS = ["configmap.yaml", "deployment.yaml", "service.yaml", "poddisruptionbudget.yaml"]
# The oldest and newest Kubernetes releases whose schemas kubernetes-validate bundles.
KUBERNETES_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]


def _docs(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def _one(name: str, kind: str) -> dict[str, Any]:
    (doc,) = [doc for doc in _docs(name) if doc["kind"] == kind]
    return doc


def _container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = _one("deployment.yaml", "Deployment")["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", CORE_MANIFESTS)
def test_core_manifests_are_valid(name: str, version: str) -> None:
    docs = _docs(name)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_rejects_an_unknown_field() -> None:
    deployment = _one("deployment.yaml", "Deployment")
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomization_lists_the_core_manifests() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(CORE_MANIFESTS)
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml", "prometheus-operator.yaml"}
    assert on_disk == set(CORE_MANIFESTS)


def test_deployment_runs_two_hardened_replicas() -> None:
    deployment = _one("deployment.yaml", "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container()
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Sized from the benchmarks: the request covers the RSS measured under sustained mixed load (~117 MiB).
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert "# sized from bench/" in (K8S / "deployment.yaml").read_text()
    # A read-only root needs a writable /tmp (caches, temporary files).
    assert any(mount["mountPath"] == "/tmp" for mount in container["volumeMounts"])


def test_deployment_matches_the_image() -> None:
    """Same UID as the Dockerfile's USER, same port as its EXPOSE, config where the image looks."""
    dockerfile = (REPO / "Dockerfile").read_text()
    user = re.search(r"^USER (\d+)(?::(\d+))?$", dockerfile, re.M)
    expose = re.search(r"^EXPOSE (\d+)$", dockerfile, re.M)
    assert user and expose
    pod = _one("deployment.yaml", "Deployment")["spec"]["template"]["spec"]
    container = _container()
    assert pod["securityContext"]["runAsUser"] == int(user.group(1))
    assert pod["securityContext"]["runAsGroup"] == int(user.group(2) or user.group(1))
    assert container["ports"][0]["containerPort"] == int(expose.group(1))
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert f"--config.file={mounts['modules']}/*.yml" in container["args"]


def test_probes_hit_endpoints_the_exporter_serves(tmp_path: Path) -> None:
    container = _container()
    paths = [container[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe")]
    assert paths == ["/-/healthy", "/-/ready"]
    modules = tmp_path / "modules.yml"
    modules.write_text(_one("configmap.yaml", "ConfigMap")["data"]["modules.yml"])
    with TestClient(create_app(Exporter(Settings(config_files=[str(modules)])))) as client:
        for path in paths:
            assert client.get(path).status_code == 200


def test_configmap_modules_load_and_match_the_shipped_ones(tmp_path: Path) -> None:
    data = _one("configmap.yaml", "ConfigMap")["data"]
    for key, text in data.items():
        (tmp_path / key).write_text(text)
    config = load_config([str(tmp_path / "*.yml")])
    assert {"http_2xx", "tcp_connect", "icmp"} <= set(config.modules)
    shipped: dict[str, Any] = {}
    for path in sorted((REPO / "modules").glob("*.yml")):
        shipped.update(yaml.safe_load(path.read_text()).get("modules") or {})
    for key, text in data.items():
        for name, body in yaml.safe_load(text)["modules"].items():
            if name in shipped:
                assert body == shipped[name], f"module {name} in {key} differs from modules/: keep them in step"


def test_service_and_budget_select_the_pods() -> None:
    pod_labels = _one("deployment.yaml", "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = _one("service.yaml", "Service")
    budget = _one("poddisruptionbudget.yaml", "PodDisruptionBudget")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["minAvailable"] < _one("deployment.yaml", "Deployment")["spec"]["replicas"]
    port_names = {port["name"] for port in _container()["ports"]}
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in port_names and port["port"] == 10115


# --- Prometheus Operator objects: the CRD fields we use, nothing else ------------------------------

_METADATA = {"type": "object", "required": ["name", "namespace"],
             "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}}},
             "additionalProperties": False}
_DURATION = {"type": "string", "pattern": r"^(\d+(ms|s|m|h))+$"}
_MATCH_LABELS = {"type": "object", "required": ["matchLabels"], "additionalProperties": False,
                 "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}}
SERVICE_MONITOR_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {"type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
                 "properties": {
                     "selector": _MATCH_LABELS,
                     "endpoints": {"type": "array", "minItems": 1, "items": {
                         "type": "object", "required": ["port"], "additionalProperties": False,
                         "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                                        "interval": _DURATION, "scrapeTimeout": _DURATION}}}}}}}
PROBE_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "Probe"},
        "metadata": _METADATA,
        "spec": {"type": "object", "required": ["prober", "targets"], "additionalProperties": False,
                 "properties": {
                     "jobName": {"type": "string"}, "interval": _DURATION, "scrapeTimeout": _DURATION,
                     "module": {"type": "string"},
                     "params": {"type": "array", "minItems": 1, "items": {
                         "type": "object", "required": ["name"], "additionalProperties": False,
                         "properties": {"name": {"type": "string", "minLength": 1},
                                        "values": {"type": "array", "minItems": 1,
                                                   "items": {"type": "string", "minLength": 1}}}}},
                     "prober": {"type": "object", "required": ["url"], "additionalProperties": False,
                                "properties": {"url": {"type": "string", "pattern": r"^[^/:]+(:\d+)?$"},
                                               "path": {"type": "string"},
                                               "scheme": {"enum": ["http", "https"]}}},
                     "targets": {"type": "object", "required": ["staticConfig"], "additionalProperties": False,
                                 "properties": {"staticConfig": {
                                     "type": "object", "required": ["static"], "additionalProperties": False,
                                     "properties": {"static": {"type": "array", "minItems": 1,
                                                               "items": {"type": "string"}},
                                                    "labels": {"type": "object",
                                                               "additionalProperties": {"type": "string"}}}}}}}}}}
_SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR_SCHEMA, "Probe": PROBE_SCHEMA}


def _operator_docs() -> list[dict[str, Any]]:
    return _docs("prometheus-operator.yaml")


def test_operator_objects_match_their_schemas() -> None:
    docs = _operator_docs()
    assert {doc["kind"] for doc in docs} == {"ServiceMonitor", "Probe"}
    for doc in docs:
        jsonschema.validate(doc, _SCHEMAS[doc["kind"]])


def test_operator_schema_rejects_a_misspelled_field() -> None:
    probe = next(doc for doc in _operator_docs() if doc["kind"] == "Probe")
    probe["spec"]["modul"] = probe["spec"].pop("module")
    with pytest.raises(jsonschema.ValidationError, match="modul"):
        jsonschema.validate(probe, PROBE_SCHEMA)


def test_operator_objects_point_at_the_service() -> None:
    service = _one("service.yaml", "Service")
    meta, port = service["metadata"], service["spec"]["ports"][0]
    address = f"{meta['name']}.{meta['namespace']}.svc:{port['port']}"
    for doc in _operator_docs():
        if doc["kind"] == "ServiceMonitor":
            assert doc["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
            assert doc["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
        else:
            assert doc["spec"]["prober"]["url"] == address
            assert doc["spec"]["prober"]["path"] == "/probe"
            # The job naming the alert rules' ProbeExporterDown expects.
            assert re.fullmatch(r"probe-.*", doc["spec"]["jobName"])


def test_every_module_and_auth_the_probes_name_is_in_the_configmap(tmp_path: Path) -> None:
    for key, text in _one("configmap.yaml", "ConfigMap")["data"].items():
        (tmp_path / key).write_text(text)
    config = load_config([str(tmp_path / "*.yml")])  # as the pods load the mounted ConfigMap
    probes = [doc["spec"] for doc in _operator_docs() if doc["kind"] == "Probe"]
    modules = {spec["module"] for spec in probes}
    auths = {value for spec in probes for param in spec.get("params", []) if param["name"] == "auth"
             for value in param["values"]}
    assert {"http_2xx", "if_mib"} <= modules and auths == {"public_v2"}
    assert sorted(modules - set(config.modules)) == []
    assert sorted(auths - set(config.snmp_auths)) == []
