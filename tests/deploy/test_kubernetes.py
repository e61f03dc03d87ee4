"""deploy/kubernetes: valid against the Kubernetes API schemas, and consistent with the code
where schemas cannot tell (probe paths, ports, settings, secrets, the carried alert rules).

ServiceMonitor and PrometheusRule are Prometheus Operator resources whose published schemas
ship in no Python package; their fields are checked here, and the rules by promtool.
"""

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import BaseModel

from app.cli import build_parser
from app.core.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes release still commonly offered by managed services, and the newest.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Variables read by something other than `Settings`.
OTHER_ENV = {"PROMETHEUS_MULTIPROC_DIR"}
# Settings that are secrets: only ever from a Secret, never a literal in a manifest.
SECRET_ENV = {"TRIAGE_DATABASE_URL", "TRIAGE_AUTH__SESSION_SECRET", "TRIAGE_AUTH__METRICS_TOKEN"}


def _documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]
    return docs


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [
        d for d in _documents() if d["kind"] == kind and name in (None, d["metadata"]["name"])
    ]
    return found


def _pod_specs() -> list[dict[str, Any]]:
    return [
        d["spec"]["template"]["spec"] for d in _documents() if d["kind"] in ("Deployment", "Job")
    ]


def _env_names(model: type[BaseModel], prefix: str = "TRIAGE_") -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names |= _env_names(field.annotation, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    on_disk = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(on_disk)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_match_the_kubernetes_api_schemas(version: str) -> None:
    import kubernetes_validate

    checked = set()
    for doc in _documents():
        if doc["kind"] in OPERATOR_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any unknown field
        checked.add(doc["kind"])
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= checked
    assert {"Job", "NetworkPolicy", "ConfigMap", "ServiceAccount", "Namespace"} <= checked


def test_no_secret_is_kept_in_the_manifests() -> None:
    assert not [d for d in _documents() if d["kind"] == "Secret"]
    assert not SECRET_ENV & set(_one("ConfigMap")["data"])
    for spec in _pod_specs():
        for container in spec["containers"]:
            for var in container.get("env", []):
                if var["name"] in SECRET_ENV:
                    assert "value" not in var and "secretKeyRef" in var["valueFrom"], var


def test_every_variable_set_is_one_the_service_reads() -> None:
    known = _env_names(Settings) | OTHER_ENV
    names = set(_one("ConfigMap")["data"])
    for spec in _pod_specs():
        for container in spec["containers"]:
            names |= {var["name"] for var in container.get("env", [])}
            assert [s["configMapRef"]["name"] for s in container["envFrom"]] == ["triage-config"]
    assert names <= known, names - known
    Settings.model_validate({})  # the ConfigMap's values parse as settings:
    config = _one("ConfigMap")["data"]
    env = {k: v for k, v in config.items() if k.startswith("TRIAGE_")}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        settings = Settings()
    assert settings.shutdown_drain_s > 0


def test_commands_are_cli_commands() -> None:
    parser = build_parser()
    deployment = _one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    job = _one("Job")["spec"]["template"]["spec"]["containers"][0]
    assert deployment["command"][:2] == ["triage", "serve"] and "db" not in deployment["command"]
    assert job["command"] == ["triage", "db", "upgrade"]
    for command in (deployment["command"], job["command"]):
        parser.parse_args(command[1:])


def _status(path: str) -> int:
    """The status the app (lifespan not started) answers `GET path` with."""
    transport = httpx.ASGITransport(app=create_app(Settings()))

    async def get() -> int:
        async with httpx.AsyncClient(transport=transport, base_url="http://triage.test") as c:
            return (await c.get(path)).status_code

    return asyncio.run(get())


def test_probes_and_ports_point_at_real_paths() -> None:
    container = _one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    serve = build_parser().parse_args(container["command"][1:])
    assert ports == {"http": serve.port}
    probes = {
        k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/healthz"
    assert _status("/healthz") == 200  # needs neither the model nor the database
    for probe in probes.values():
        assert _status(probe["path"]) != 404 and probe["port"] in ports
    service = _one("Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    monitor = _one("ServiceMonitor")["spec"]["endpoints"]
    assert [(e["port"], e["path"]) for e in monitor] == [("http", "/metrics")]
    assert _status("/metrics") != 404
    allowed = [
        p["port"] for rule in _one("NetworkPolicy")["spec"]["ingress"] for p in rule["ports"]
    ]
    assert allowed == [serve.port]


def test_selectors_find_the_pods() -> None:
    deployment = _one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selected = [
        deployment["spec"]["selector"]["matchLabels"],
        _one("Service")["spec"]["selector"],
        _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        _one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selected:
        assert selector.items() <= labels.items(), selector
    job_labels = _one("Job")["spec"]["template"]["metadata"]["labels"]
    assert _one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"].items() <= job_labels.items()
    service_labels = _one("Service")["metadata"]["labels"]
    assert (
        _one("ServiceMonitor")["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    )
    target = _one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_pods_run_as_non_root_on_a_read_only_root_with_their_writable_paths() -> None:
    for spec in _pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]
            assert set(container["resources"]["requests"]) == {"cpu", "memory"}
            assert "memory" in container["resources"]["limits"]
    deployment = _one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"] for m in deployment["volumeMounts"]}
    assert _one("ConfigMap")["data"]["PROMETHEUS_MULTIPROC_DIR"] in mounts


def test_service_monitor_and_rule_have_the_operator_fields() -> None:
    monitor = _one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    for endpoint in monitor["spec"]["endpoints"]:
        fields = {"port", "path", "interval", "scrapeTimeout", "authorization", "scheme"}
        assert set(endpoint) <= fields, set(endpoint) - fields
        assert endpoint["authorization"]["type"] == "Bearer"
        credentials = endpoint["authorization"]["credentials"]
        # The same Secret and key the service reads its token from.
        deployment = _one("Deployment")["spec"]["template"]["spec"]["containers"][0]
        [token] = [v for v in deployment["env"] if v["name"] == "TRIAGE_AUTH__METRICS_TOKEN"]
        assert credentials == token["valueFrom"]["secretKeyRef"]
    rule = _one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and set(rule["spec"]) == {"groups"}


def test_prometheus_rule_carries_the_alert_rules(tmp_path: Path) -> None:
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    groups = _one("PrometheusRule")["spec"]["groups"]
    assert groups == alerts["groups"]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
