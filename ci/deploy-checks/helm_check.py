#!/usr/bin/env python3
"""Lint and render the Helm chart offline, and validate what it renders.

Helm itself comes from the PyPI package helm-python-sdk, which binds Helm v4's Go SDK as a
shared library, so no helm binary and no cluster are needed. Rendered manifests are checked
against the Kubernetes OpenAPI schemas bundled in kubernetes-validate, in strict mode (unknown
fields fail). kubernetes-validate has no schema for the Prometheus Operator's ServiceMonitor,
so that one gets a structural check written here.

Usage: helm_check.py [CHART_DIR]   (default: helm/misp-lookup of this repository)
Prints one line per case and closes with "N passed, N failed"; exits 1 on any failure.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import helm_python as helm
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
RELEASE = "rel"
NAMESPACE = "threat-intel"
FULLNAME = f"{RELEASE}-misp-lookup"

# Oldest Kubernetes version the chart declares (Chart.yaml kubeVersion) and the newest one
# whose schemas kubernetes-validate bundles.
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]

MISP_KEY = "0123456789abcdefABCDEF0123456789abcdefAB"
MINIMAL = {"misp": {"url": "https://misp.example.org", "key": MISP_KEY}}

# Every optional feature of the chart switched on at once.
EVERYTHING = {
    "replicaCount": 3,
    "misp": {
        "url": "https://misp.example.org",
        "publicUrl": "https://misp-web.example.org",
        "key": MISP_KEY,
        "caCert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "insecure": False,
        "timeout": "30s",
        "limit": 200,
        "maxInflight": 16,
        "include": ["context", "sightings"],
    },
    "apiToken": "graylog-api-token-0123",
    "adminToken": "cache-admin-token-0123",
    "cache": {
        "capacity": 250000,
        "ttlHit": "sha256=24h,ip=1h,default=4h",
        "ttlMiss": "10m",
        "staleMax": "6h",
    },
    "answerDeadline": "1s",
    "batch": {"max": 100, "window": "5ms"},
    "redis": {
        "url": "rediss://:secret@redis.example.org:6380/0",
        "caCert": "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----",
    },
    "fields": ["threat_level=$.Event.threat_level_id"],
    "workers": 4,
    "logFormat": "text",
    "extraEnv": [{"name": "RUST_LOG", "value": "info"}],
    "imagePullSecrets": [{"name": "registry"}],
    "podAnnotations": {"example.org/team": "soc"},
    "autoscaling": {
        "enabled": True,
        "minReplicas": 2,
        "maxReplicas": 8,
        "targetCPUUtilizationPercentage": 60,
        "targetMemoryUtilizationPercentage": 80,
    },
    "podDisruptionBudget": {"enabled": True, "minAvailable": None, "maxUnavailable": "25%"},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "misp-lookup"}},
        }
    ],
}

EXISTING_SECRETS = {
    "misp": {
        "url": "https://misp.example.org",
        "caCertExistingConfigMap": "corporate-ca",
        "caCertExistingConfigMapKey": "bundle.pem",
    },
    "existingSecret": "misp-lookup-credentials",
    "secretKeys": {"mispKey": "misp-key", "apiToken": "api-token", "adminToken": ""},
    "redis": {
        "existingSecret": "redis-credentials",
        "existingSecretKey": "url",
        "caCertExistingConfigMap": "redis-ca",
        "caCertExistingConfigMapKey": "redis-bundle.pem",
    },
}

# Values that values.schema.json must reject: (description, values, text the error contains).
BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("replicaCount as a string", {**MINIMAL, "replicaCount": "three"}, "replicaCount"),
    ("negative replicaCount", {**MINIMAL, "replicaCount": -1}, "replicaCount"),
    ("unknown top-level key", {**MINIMAL, "replicas": 2}, "replicas"),
    ("misp.url missing", {"misp": {"key": MISP_KEY}}, "url"),
    ("misp.url without scheme", {"misp": {"url": "misp.example.org", "key": MISP_KEY}}, "url"),
    ("misp.url in demo mode", {"demo": True, "misp": {"url": "https://misp.example.org"}}, "url"),
    ("image.pullPolicy outside the enum", {**MINIMAL, "image": {"repository": "x", "pullPolicy": "Sometimes"}}, "pullPolicy"),
    ("logFormat outside the enum", {**MINIMAL, "logFormat": "xml"}, "logFormat"),
    ("unknown misp.include", {"misp": {**MINIMAL["misp"], "include": ["everything"]}}, "include"),
    ("redis.url with http scheme", {**MINIMAL, "redis": {"url": "http://redis:6379"}}, "url"),
    ("service.port out of range", {**MINIMAL, "service": {"type": "ClusterIP", "port": 70000}}, "port"),
    ("service.type outside the enum", {**MINIMAL, "service": {"type": "Ingress", "port": 8080}}, "type"),
    ("grace period below the drain time", {**MINIMAL, "terminationGracePeriodSeconds": 10}, "terminationGracePeriodSeconds"),
    ("misp.timeout not a duration", {"misp": {**MINIMAL["misp"], "timeout": "soon"}}, "timeout"),
    ("cache.ttlHit list with a bad duration", {**MINIMAL, "cache": {"ttlHit": "sha256=forever"}}, "ttlHit"),
    ("misp.limit as a string", {"misp": {**MINIMAL["misp"], "limit": "100"}}, "limit"),
    ("demo as a string", {"demo": "yes"}, "demo"),
    ("apiToken shorter than 16 characters", {**MINIMAL, "apiToken": "short"}, "apiToken"),
    ("adminToken shorter than 16 characters", {**MINIMAL, "adminToken": "short"}, "adminToken"),
    ("field without a JSONPath", {**MINIMAL, "fields": ["threat_level"]}, "fields"),
]

# Values that pass the schema but that the templates reject with a message.
TEMPLATE_FAILURES: list[tuple[str, dict[str, Any], str]] = [
    ("redis.url with existingSecret", {**EXISTING_SECRETS, "redis": {"url": "redis://redis:6379"}}, "redis.existingSecret"),
    ("no MISP key at all", {"misp": {"url": "https://misp.example.org"}}, "MISP key is required"),
    ("minReplicas above maxReplicas", {**MINIMAL, "autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}, "minReplicas"),
    ("redis.caCert without a Redis URL", {**MINIMAL, "redis": {"caCert": "x"}}, "needs a Redis URL"),
    ("redis.caCert with a redis:// URL", {**MINIMAL, "redis": {"url": "redis://redis:6379", "caCert": "x"}}, "rediss://"),
]


class CheckFailed(Exception):
    """A check whose condition did not hold."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def render(chart: helm.Chart, values: dict[str, Any] | None) -> dict[str, str]:
    return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def manifests_of(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Parse every YAML document of every rendered template except NOTES.txt."""
    documents = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document is not None:
                documents.append(document)
    return documents


def notes_of(rendered: dict[str, str]) -> str:
    return next(text for name, text in rendered.items() if name.endswith("NOTES.txt"))


def by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [document for document in documents if document.get("kind") == kind]


def one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(documents, kind)
    expect(len(found) == 1, f"expected one {kind}, rendered {len(found)}")
    return found[0]


def check_service_monitor(document: dict[str, Any]) -> None:
    """Structural check of a monitoring.coreos.com/v1 ServiceMonitor (no bundled schema)."""
    expect(document.get("apiVersion") == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
    metadata = document.get("metadata") or {}
    expect(isinstance(metadata.get("name"), str) and metadata["name"], "ServiceMonitor metadata.name")
    spec = document.get("spec") or {}
    expect(set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}, f"ServiceMonitor spec has unknown keys: {sorted(spec)}")
    match_labels = (spec.get("selector") or {}).get("matchLabels")
    expect(isinstance(match_labels, dict) and match_labels, "ServiceMonitor spec.selector.matchLabels must be a non-empty map")
    endpoints = spec.get("endpoints")
    expect(isinstance(endpoints, list) and endpoints, "ServiceMonitor spec.endpoints must be a non-empty list")
    for endpoint in endpoints:
        expect(set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}, f"ServiceMonitor endpoint has unknown keys: {sorted(endpoint)}")
        expect(isinstance(endpoint.get("port"), str), "ServiceMonitor endpoint.port must name a Service port")
        expect(endpoint.get("path") == "/metrics", "ServiceMonitor endpoint.path must be /metrics")
    names = (spec.get("namespaceSelector") or {}).get("matchNames", [])
    expect(names == [NAMESPACE], f"ServiceMonitor namespaceSelector {names}")


def validate_manifests(documents: list[dict[str, Any]]) -> None:
    expect(documents, "nothing rendered")
    for document in documents:
        kind = document.get("kind")
        if kind == "ServiceMonitor":
            check_service_monitor(document)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = "/".join(str(part) for part in error.path)
                first_line = str(error).splitlines()[0]
                raise CheckFailed(f"{kind} invalid for Kubernetes {version} at {path}: {first_line}") from None


def check_common(documents: list[dict[str, Any]], notes: str) -> dict[str, Any]:
    """Run the checks that every rendering must pass, and return the Deployment."""
    validate_manifests(documents)
    deployment = one(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    expect(pod["terminationGracePeriodSeconds"] == 30, "terminationGracePeriodSeconds must be 30")
    expect(pod["automountServiceAccountToken"] is False, "service account token must not be mounted")
    expect(pod["securityContext"]["runAsNonRoot"] is True, "pod runAsNonRoot")
    expect(pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", "pod seccompProfile")
    (container,) = pod["containers"]
    security = container["securityContext"]
    expect(security["runAsNonRoot"] is True, "container runAsNonRoot")
    expect(security["runAsUser"] == 10001, "container runAsUser 10001")
    expect(security["readOnlyRootFilesystem"] is True, "readOnlyRootFilesystem")
    expect(security["allowPrivilegeEscalation"] is False, "allowPrivilegeEscalation false")
    expect(security["capabilities"]["drop"] == ["ALL"], "capabilities drop ALL")
    expect(security["seccompProfile"]["type"] == "RuntimeDefault", "container seccompProfile")
    expect("requests" in container["resources"] and "limits" in container["resources"], "resources requests and limits")
    expect(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness probe on /healthz")
    expect(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness probe on /readyz")
    expect(container["startupProbe"]["httpGet"]["path"] == "/healthz", "startup probe on /healthz")
    expect(container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}], "container port 8080")
    expect(container["envFrom"] == [{"configMapRef": {"name": FULLNAME}}], "env from the ConfigMap")

    config_map = next(c for c in by_kind(documents, "ConfigMap") if c["metadata"]["name"] == FULLNAME)
    expect(config_map["data"]["MISP_LOOKUP_LISTEN"] == "0.0.0.0:8080", "MISP_LOOKUP_LISTEN must be 0.0.0.0:8080")
    for key, value in config_map["data"].items():
        expect(key.startswith("MISP_LOOKUP_"), f"ConfigMap key {key} is not a MISP_LOOKUP_ variable")
        expect(isinstance(value, str), f"ConfigMap value of {key} is not a string")

    service = one(documents, "Service")
    expect(service["metadata"]["name"] == FULLNAME, "Service name")
    expect(service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"], "Service selects the Deployment's pods")

    base = f"http://{FULLNAME}.{NAMESPACE}.svc:8080/lookup/${{key}}"
    expect(base in notes, f"NOTES.txt lacks the adapter URL {base}")
    expect("$.found" in notes and "$.fields" in notes, "NOTES.txt lacks the JSONPaths")
    expect("expire_after_write" in notes, "NOTES.txt lacks the Graylog cache settings")
    return deployment


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {variable["name"]: variable for variable in container.get("env", [])}


def case_lint_minimal(chart_dir: Path, chart: helm.Chart) -> None:
    report = helm.lint(str(chart_dir), MINIMAL, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    expect(not problems and not report["errors"], f"lint findings: {problems or report['errors']}")


def case_lint_everything(chart_dir: Path, chart: helm.Chart) -> None:
    report = helm.lint(str(chart_dir), EVERYTHING, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    expect(not problems and not report["errors"], f"lint findings: {problems or report['errors']}")


def case_defaults_require_misp_url(chart_dir: Path, chart: helm.Chart) -> None:
    report = helm.lint(str(chart_dir), None, namespace=NAMESPACE)
    expect(any("/misp/url" in error for error in report["errors"]), f"lint of the bare defaults must fail on misp.url, got {report['errors']}")


def case_render_minimal(chart_dir: Path, chart: helm.Chart) -> None:
    rendered = render(chart, MINIMAL)
    documents = manifests_of(rendered)
    deployment = check_common(documents, notes_of(rendered))
    kinds = sorted(document["kind"] for document in documents)
    expect(kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"], f"default kinds {kinds}")
    env = env_of(deployment)
    expect(env["MISP_LOOKUP_MISP_KEY_FILE"]["value"] == "/var/run/secrets/misp-lookup/misp-key", "MISP key file path")
    expect("MISP_LOOKUP_API_TOKEN_FILE" not in env, "no API token file without apiToken")
    expect("MISP_LOOKUP_REDIS_URL" not in env, "no Redis URL without redis.url")
    secret = one(documents, "Secret")
    expect(set(secret["data"]) == {"misp-key"}, f"Secret keys {sorted(secret['data'])}")
    expect(deployment["spec"]["replicas"] == 2, "default replicas")


def case_render_demo(chart_dir: Path, chart: helm.Chart) -> None:
    rendered = render(chart, {"demo": True})
    documents = manifests_of(rendered)
    deployment = check_common(documents, notes_of(rendered))
    data = one(documents, "ConfigMap")["data"]
    expect(data.get("MISP_LOOKUP_DEMO") == "true", "demo flag")
    expect("MISP_LOOKUP_MISP_URL" not in data, "demo mode must not set a MISP URL (the service rejects both)")
    expect("MISP_LOOKUP_MISP_KEY_FILE" not in env_of(deployment), "demo mode must not set a MISP key")
    expect(not by_kind(documents, "Secret"), "demo mode without tokens needs no Secret")


def case_render_everything(chart_dir: Path, chart: helm.Chart) -> None:
    rendered = render(chart, EVERYTHING)
    documents = manifests_of(rendered)
    deployment = check_common(documents, notes_of(rendered))
    kinds = sorted(document["kind"] for document in documents)
    expected = ["ConfigMap", "ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "ServiceMonitor"]
    expect(kinds == expected, f"kinds {kinds}")
    expect("replicas" not in deployment["spec"], "replicas must be left to the HPA")

    env = env_of(deployment)
    for name, file in [("MISP_LOOKUP_MISP_KEY_FILE", "misp-key"), ("MISP_LOOKUP_API_TOKEN_FILE", "api-token"), ("MISP_LOOKUP_ADMIN_TOKEN_FILE", "admin-token")]:
        expect(env[name]["value"] == f"/var/run/secrets/misp-lookup/{file}", f"{name} path")
    redis = env["MISP_LOOKUP_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    expect(redis == {"name": FULLNAME, "key": "redis-url"}, f"Redis URL secretKeyRef {redis}")

    secret = one(documents, "Secret")
    expect(set(secret["data"]) == {"misp-key", "api-token", "admin-token", "redis-url"}, f"Secret keys {sorted(secret['data'])}")

    data = next(c for c in by_kind(documents, "ConfigMap") if c["metadata"]["name"] == FULLNAME)["data"]
    expected_data = {
        "MISP_LOOKUP_TTL_HIT": "sha256=24h,ip=1h,default=4h",
        "MISP_LOOKUP_STALE_MAX": "6h",
        "MISP_LOOKUP_ANSWER_DEADLINE": "1s",
        "MISP_LOOKUP_MISP_TIMEOUT": "30s",
        "MISP_LOOKUP_MISP_MAX_INFLIGHT": "16",
        "MISP_LOOKUP_BATCH_MAX": "100",
        "MISP_LOOKUP_BATCH_WINDOW": "5ms",
        "MISP_LOOKUP_MISP_INCLUDE": "context,sightings",
        "MISP_LOOKUP_MISP_CA_CERT": "/etc/misp-lookup/ca/ca.pem",
        "MISP_LOOKUP_REDIS_CA_CERT": "/etc/misp-lookup/redis-ca/ca.pem",
        "MISP_LOOKUP_CACHE_CAPACITY": "250000",
        "MISP_LOOKUP_FIELD": "threat_level=$.Event.threat_level_id",
        "MISP_LOOKUP_WORKERS": "4",
    }
    for key, value in expected_data.items():
        expect(data.get(key) == value, f"ConfigMap {key}={data.get(key)!r}, expected {value!r}")

    redis_ca = next(c for c in by_kind(documents, "ConfigMap") if c["metadata"]["name"] == f"{FULLNAME}-redis-ca")
    expect("MIIC" in redis_ca["data"]["ca.pem"], "redis.caCert in its ConfigMap")

    notes = notes_of(rendered)
    expect("Authorization: Bearer" in notes, "NOTES.txt must mention the API token header")

    hpa = one(documents, "HorizontalPodAutoscaler")
    expect(hpa["spec"]["maxReplicas"] == 8 and len(hpa["spec"]["metrics"]) == 2, "HPA bounds and metrics")
    pdb = one(documents, "PodDisruptionBudget")
    expect(pdb["spec"] == {"maxUnavailable": "25%", "selector": deployment["spec"]["selector"]}, f"PDB spec {pdb['spec']}")


def case_render_existing_secrets(chart_dir: Path, chart: helm.Chart) -> None:
    rendered = render(chart, EXISTING_SECRETS)
    documents = manifests_of(rendered)
    deployment = check_common(documents, notes_of(rendered))
    expect(not by_kind(documents, "Secret"), "existingSecret must suppress the chart's Secret")
    env = env_of(deployment)
    expect("MISP_LOOKUP_ADMIN_TOKEN_FILE" not in env, "secretKeys.adminToken '' must drop the admin token")
    expect(env["MISP_LOOKUP_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "redis-credentials", "key": "url"}, "Redis URL from redis.existingSecret")
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    expect(volumes["credentials"]["secret"]["secretName"] == "misp-lookup-credentials", "credentials volume from existingSecret")
    expect(volumes["misp-ca"]["configMap"] == {"name": "corporate-ca", "items": [{"key": "bundle.pem", "path": "ca.pem"}]}, "CA from the existing ConfigMap")
    expect(volumes["redis-ca"]["configMap"] == {"name": "redis-ca", "items": [{"key": "redis-bundle.pem", "path": "ca.pem"}]}, "Redis CA from the existing ConfigMap")
    mounts = {mount["name"]: mount for mount in deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    expect(mounts["redis-ca"]["mountPath"] == "/etc/misp-lookup/redis-ca", "Redis CA mount path")


def case_render_long_fullname(chart_dir: Path, chart: helm.Chart) -> None:
    values = {**EVERYTHING, "fullnameOverride": "x" * 63}
    documents = manifests_of(render(chart, values))
    names = sorted(c["metadata"]["name"] for c in by_kind(documents, "ConfigMap"))
    expect(len(set(names)) == 3, f"ConfigMap names must differ: {names}")
    expect(all(len(name) <= 63 for name in names), f"ConfigMap names over 63 characters: {names}")


def case_render_forward_caller_key(chart_dir: Path, chart: helm.Chart) -> None:
    rendered = render(chart, {"misp": {"url": "https://misp.example.org"}, "forwardCallerKey": True})
    documents = manifests_of(rendered)
    deployment = check_common(documents, notes_of(rendered))
    expect("env" not in deployment["spec"]["template"]["spec"]["containers"][0], "no env without secrets")


def make_bad_value_case(values: dict[str, Any], needle: str) -> Callable[[Path, helm.Chart], None]:
    def case(chart_dir: Path, chart: helm.Chart) -> None:
        try:
            chart.validate_schema(values)
        except helm.HelmValuesError as error:
            expect(needle in str(error), f"schema error does not name {needle!r}: {error}")
        else:
            raise CheckFailed("values.schema.json accepted the values")
        try:
            render(chart, values)
        except helm.HelmValuesError:
            pass
        else:
            raise CheckFailed("rendering accepted the values")

    return case


def make_template_failure_case(values: dict[str, Any], needle: str) -> Callable[[Path, helm.Chart], None]:
    def case(chart_dir: Path, chart: helm.Chart) -> None:
        chart.validate_schema(values)
        try:
            render(chart, values)
        except helm.HelmError as error:
            expect(needle in str(error), f"render error does not name {needle!r}: {error}")
        else:
            raise CheckFailed("rendering accepted the values")

    return case


def case_good_durations(chart_dir: Path, chart: helm.Chart) -> None:
    for ttl in ["1h", "1h 30m", "90 seconds", "sha256=24h,ip=1h,default=4h", "default=4h"]:
        chart.validate_schema({**MINIMAL, "cache": {"ttlHit": ttl, "ttlMiss": ttl}})
    for url in ["redis://redis:6379/0", "rediss://:pw@redis:6380", "redis-sentinel://sentinel:26379/mymaster", "redis-cluster://node1:6379"]:
        chart.validate_schema({**MINIMAL, "redis": {"url": url}})


def main() -> int:
    chart_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "helm" / "misp-lookup"
    chart = helm.Chart.load(str(chart_dir))
    print(f"chart {chart.name} {chart.version}, Helm SDK {helm.helm_sdk_version()}, Kubernetes schemas {', '.join(KUBE_VERSIONS)}")

    cases: list[tuple[str, Callable[[Path, helm.Chart], None]]] = [
        ("lint with misp.url and key", case_lint_minimal),
        ("lint with every feature on", case_lint_everything),
        ("bare defaults fail on misp.url", case_defaults_require_misp_url),
        ("render minimal", case_render_minimal),
        ("render demo", case_render_demo),
        ("render every feature on", case_render_everything),
        ("render existingSecret", case_render_existing_secrets),
        ("render forwardCallerKey", case_render_forward_caller_key),
        ("render a 63-character fullnameOverride", case_render_long_fullname),
        ("schema accepts durations and Redis URLs", case_good_durations),
    ]
    cases += [(f"schema rejects {name}", make_bad_value_case(values, needle)) for name, values, needle in BAD_VALUES]
    cases += [(f"template rejects {name}", make_template_failure_case(values, needle)) for name, values, needle in TEMPLATE_FAILURES]

    passed = failed = 0
    for name, case in cases:
        try:
            case(chart_dir, chart)
        except CheckFailed as error:
            failed += 1
            print(f"FAIL {name}: {error}")
        except Exception:  # noqa: BLE001 - report any crash as this case's failure
            failed += 1
            print(f"FAIL {name}: unexpected error")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"helm: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
