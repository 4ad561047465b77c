"""The collector tail-sampling recipe, checked without a Docker engine: the overlay merged
over deploy/otel-collector.yaml the way the collector merges --config files (maps deep,
lists replaced) keeps errors and slow traces, and every processor it names is defined."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def merge(base, overlay):
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = merge(base.get(key), value)
        return merged
    return overlay


def test_overlay_keeps_errors_and_slow_traces():
    base = yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text())
    overlay = yaml.safe_load((ROOT / "deploy" / "otel-collector-tail-sampling.yaml").read_text())
    config = merge(base, overlay)
    chain = config["service"]["pipelines"]["traces"]["processors"]
    assert chain[0] == "memory_limiter" and chain[-1] == "batch" and "tail_sampling" in chain
    assert set(chain) <= set(config["processors"])
    assert config["service"]["pipelines"]["traces"]["exporters"] == base["service"]["pipelines"]["traces"]["exporters"]
    policies = {p["type"]: p for p in config["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] > 0


def test_compose_override_mounts_the_overlay_as_a_second_config():
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    override = yaml.safe_load((ROOT / "deploy" / "compose.tail-sampling.yaml").read_text())
    service = override["services"]["otel-collector"]
    assert "otel-collector" in compose["services"]
    mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
    configs = [arg.split("=", 1)[1] for arg in service["command"]]
    assert configs[0] in " ".join(compose["services"]["otel-collector"]["command"])
    assert mounted[configs[1]] == "./deploy/otel-collector-tail-sampling.yaml"
