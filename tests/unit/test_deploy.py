"""The deployment files: Prometheus config and rules (promtool), the Grafana dashboard and
alert rules query only metrics the worker exports, and the compose file, Dockerfile and
Kubernetes manifests use the real CLI, settings and endpoints."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.cli import parser
from streams.metrics import Metrics
from streams.settings import ENV, Settings
from tests.support import queried_metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SETTINGS = {var for _, var, _, _ in ENV}
ENDPOINTS = {"/health", "/metrics"}


def exported_metrics() -> set[str]:
    """The sample names the worker's registry can expose."""
    suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
                "gauge": [""], "info": ["_info"]}  # fmt: skip
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: install Debian's prometheus package (apt-get install prometheus)"
    return path


def test_promtool_accepts_the_prometheus_config_and_rules() -> None:
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        result = subprocess.run([promtool(), *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_rule_passes_its_promtool_unit_tests() -> None:
    prometheus = DEPLOY / "prometheus"
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"], cwd=prometheus, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rules = {r["alert"] for g in yaml.safe_load((prometheus / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    tests = yaml.safe_load((prometheus / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert rules == tested  # each rule has a test


def test_dashboard_and_rules_query_only_exported_metrics() -> None:
    queried = queried_metrics()
    assert len(queried) >= 10
    assert queried - exported_metrics() - {"up"} == set()
    dashboard = json.loads((DEPLOY / "grafana/dashboards/social-streams.json").read_text())
    assert all(panel["targets"] for panel in dashboard["panels"])


def cli_ok(args: list[str]) -> None:
    parser().parse_args(args)  # exits (SystemExit) on an unknown command or option


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_stack_is_complete_and_consistent(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "worker-1", "worker-2", "replay", "prometheus", "grafana"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for volume in service.get("volumes", []):
            assert (ROOT / volume.split(":")[0]).exists(), f"{name} mounts a missing path: {volume}"
        if service.get("image", "").startswith("social-streams"):
            cli_ok(service["command"])
            assert set(service.get("environment", {})) <= SETTINGS, f"{name} sets unknown variables"
    prometheus = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = {
        t.split(":")[0] for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    assert targets == {"worker-1", "worker-2"}


def test_dockerfile_runs_the_cli_as_a_non_root_user() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    instructions = {line.split()[0]: line for line in lines if line and not line.startswith("#")}
    assert json.loads(instructions["ENTRYPOINT"].removeprefix("ENTRYPOINT")) == ["social-streams"]
    cli_ok(json.loads(instructions["CMD"].removeprefix("CMD")))
    assert instructions["USER"].split()[1] not in ("root", "0")
    assert "/health" in " ".join(lines[lines.index(instructions["HEALTHCHECK"]) :][:2])
    for line in lines:
        if line.startswith("COPY") and "--from" not in line:
            for source in shlex.split(line)[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies a missing path: {source}"


def test_kubernetes_manifests_use_real_settings_probes_and_metrics() -> None:
    docs = [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
    apart = [doc for doc in docs if doc["metadata"]["name"] in ("social-streams-sink", "social-streams-media")]
    docs = [doc for doc in docs if doc not in apart]
    kinds = {doc["kind"]: doc for doc in docs}
    assert {"ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler"} <= set(kinds)
    config = kinds["ConfigMap"]["data"]
    assert set(config) <= SETTINGS
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    cli_ok(container["args"])
    assert {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")} <= ENDPOINTS
    assert container["resources"]["requests"]["cpu"] and pod["securityContext"]["runAsNonRoot"]
    # Each pod names itself to the others by its own address (query routing), never 0.0.0.0.
    advertised = {e["name"]: e for e in container["env"]}["STREAMS_WEB_ADVERTISED_HOST"]
    assert advertised["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert {e["name"] for e in container["env"]} <= SETTINGS
    mount = container["volumeMounts"][0]["mountPath"]
    assert config["STREAMS_PSEUDONYM_SECRET_FILE"].startswith(mount + "/")
    key = config["STREAMS_PSEUDONYM_SECRET_FILE"].rsplit("/", 1)[1]
    assert key in kinds["Secret"]["stringData"]
    metric = kinds["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["external"]["metric"]["name"]
    assert metric in exported_metrics()


def test_the_sink_deployment_runs_the_sink_with_real_settings() -> None:
    [sink] = list(yaml.safe_load_all((DEPLOY / "k8s/sink.yaml").read_text()))
    pod = sink["spec"]["template"]["spec"]
    container = pod["containers"][0]
    cli_ok(container["args"])
    assert container["args"] == ["sink"] and pod["securityContext"]["runAsNonRoot"]
    assert {e["name"] for e in container["env"]} <= SETTINGS


def test_the_media_deployment_runs_only_the_media_agent_with_real_settings() -> None:
    [media] = list(yaml.safe_load_all((DEPLOY / "k8s/media.yaml").read_text()))
    container = media["spec"]["template"]["spec"]["containers"][0]
    cli_ok(container["args"])
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert {e["name"] for e in container["env"]} <= SETTINGS and Settings.from_env(env).agent_names == ["media"]
    assert any(e["name"] == "STREAMS_WEB_ADVERTISED_HOST" for e in container["env"])
    assert {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")} <= ENDPOINTS


def test_the_readme_shows_the_example_queries_the_tests_run() -> None:
    from streams.sink.query import EXAMPLES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [name for name, sql in EXAMPLES.items() if f"-- {name}\n{sql};" not in readme] == []
