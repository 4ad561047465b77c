"""docker-compose.yaml and the collector config, checked without a Docker engine: the
services, ports, start order, and that every variable set is one the code reads."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tracing_app.conf import KEYS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = {name for name, service in SERVICES.items() if service.get("build")}
DEFAULT = re.compile(r"^\$\{(\w+):-(.*)\}$")  # ${NAME:-default}


def ports(service: dict) -> set[int]:
    return {int(str(mapping).split(":")[-1].split("/")[0]) for mapping in service.get("ports", [])}


def variables_read_by_the_app() -> set[str]:
    """Environment variable names the demo's settings, gunicorn config and the library read."""
    sources = [ROOT / "gunicorn.conf.py", *ROOT.glob("project/*.py"), *ROOT.glob("apps/**/*.py")]
    names = set()
    for source in sources:
        names |= set(re.findall(r"""environ(?:\.get\(|\[)\s*["'](\w+)["']""", source.read_text()))
    return names | {var for key in KEYS for var in key.env}


def test_every_demo_process_runs_with_the_backends_and_jaeger():
    assert {"postgres", "rabbitmq", "redis", "jaeger", "web", "worker", "beat"} <= set(SERVICES)
    assert {"web", "worker", "beat"} <= APP_SERVICES
    assert SERVICES["beat"]["command"].startswith("celery -A project beat")
    assert SERVICES["otel-collector"]["profiles"] == ["collector"]
    assert "profiles" not in SERVICES["jaeger"], "Jaeger runs in the default stack"


def test_ports_are_the_otlp_ones_and_never_the_legacy_thrift_port():
    assert {4317, 4318, 16686} <= ports(SERVICES["jaeger"])
    assert 8000 in ports(SERVICES["web"])
    for name, service in SERVICES.items():
        assert 14268 not in ports(service), name
    for name in APP_SERVICES:
        endpoint = SERVICES[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        match = DEFAULT.match(endpoint)
        assert match and match[1] == "OTEL_EXPORTER_OTLP_ENDPOINT" and match[2] == "http://jaeger:4318", endpoint


def test_services_start_only_after_what_they_need_is_healthy():
    for name in ("postgres", "rabbitmq", "redis", "jaeger", "web"):
        assert SERVICES[name]["healthcheck"]["test"], name
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a list"
        for target, rule in depends.items():
            assert target in SERVICES, (name, target)
            assert rule["condition"] in ("service_healthy", "service_completed_successfully"), (name, target)
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target}, which has no health check"
    for name in APP_SERVICES:
        assert {"postgres", "rabbitmq", "redis", "jaeger"} <= waits_for(name), name


def waits_for(name: str) -> set[str]:
    """Every service ``name`` waits for, directly or through another."""
    found: set[str] = set()
    todo = list(SERVICES[name].get("depends_on", {}))
    while todo:
        target = todo.pop()
        if target not in found:
            found.add(target)
            todo.extend(SERVICES[target].get("depends_on", {}))
    return found


def test_every_variable_the_app_services_set_is_read_by_the_code():
    known = variables_read_by_the_app()
    for name in APP_SERVICES:
        unknown = set(SERVICES[name].get("environment", {})) - known
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"


def test_collector_config_is_one_traces_pipeline_from_otlp_to_jaeger():
    config = yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    assert pipeline["processors"][0] == "memory_limiter" and pipeline["processors"][-1] == "batch"
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) <= set(config[kind]), f"{kind} used but not defined"
    [exporter] = pipeline["exporters"]
    assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    volume = SERVICES["otel-collector"]["volumes"][0]
    assert volume.startswith("./deploy/otel-collector.yaml:")
    assert volume.split(":")[1] in " ".join(SERVICES["otel-collector"]["command"])


def test_relay_starts_after_the_notifications_queue_is_bound():
    assert {"notifications", "relay"} <= APP_SERVICES
    assert SERVICES["notifications"]["command"] == "python manage.py consume_events"
    assert SERVICES["relay"]["command"] == "python manage.py relay_outbox"
    assert SERVICES["relay"]["depends_on"]["notifications"]["condition"] == "service_healthy"
    assert "queue_declare(queue='notifications', passive=True)" in SERVICES["notifications"]["healthcheck"]["test"][-1]


def test_every_app_process_shares_the_redis_cache():
    for name in APP_SERVICES:
        assert SERVICES[name]["environment"]["REDIS_CACHE_URL"] == "redis://redis:6379/1", name


def schema_errors(path: Path) -> str:
    """What check-jsonschema finds wrong in ``path`` against the Compose specification's JSON
    schema (the copy check-jsonschema ships, ``vendor.compose-spec``); empty when it is valid."""
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                             str(path)], capture_output=True, text=True, timeout=120)
    return "" if result.returncode == 0 else result.stdout + result.stderr


@pytest.mark.parametrize("name", ["docker-compose.yaml", "deploy/compose.tail-sampling.yaml"])
def test_compose_files_follow_the_compose_specification(name):
    assert schema_errors(ROOT / name) == ""


@pytest.mark.parametrize("breaks", [
    lambda compose: compose["services"]["web"]["depends_on"]["postgres"].update(condition="service_ready"),
    lambda compose: compose["services"]["redis"].update(helthcheck={"test": ["CMD", "true"]}),
    lambda compose: compose["services"]["worker"].update(ports="8001:8001"),
])
def test_the_schema_check_refuses_what_compose_would(breaks, tmp_path):
    broken = copy.deepcopy(COMPOSE)
    breaks(broken)
    path = tmp_path / "docker-compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert "validation errors" in schema_errors(path).lower()
