"""The embedded demo as a new user runs it: ``make demo`` in a fresh copy of the project,
no PostgreSQL, no RabbitMQ, no Docker."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_order_trace import ORDER_TRACE

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(?P<error>[ !]) (?P<service>.{20}) (?P<indent> *)(?P<name>.+?) \[(?P<kind>\w+)\]\s+[\d.]+ m?s \|")


def parse_traces(output: str) -> dict[str, list[tuple[int, str, str, str]]]:
    """tracing_tail's waterfalls: trace id -> [(depth, service, name, kind)]."""
    traces: dict[str, list] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("trace "):
            current = traces.setdefault(line.split()[1], [])
        elif current is not None and (match := LINE.match(line)):
            current.append((len(match["indent"]) // 2, match["service"].strip(), match["name"], match["kind"]))
        else:
            current = None
    return traces


def flatten(expect, depth=0):
    yield depth, expect.service, expect.name, expect.kind
    for child in expect.children:
        yield from flatten(child, depth + 1)


def processes_in(folder: Path) -> list[str]:
    """Processes whose working directory is inside ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                found.append(entry.name + ": " + (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


@pytest.mark.parametrize("make_args", [[], ["ASGI=1"]], ids=["wsgi", "asgi"])
def test_make_demo_runs_the_stack_embedded_prints_connected_traces_and_leaves_nothing_running(tmp_path, make_args):
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(".git", ".venv", ".demo", "__pycache__", "*.sqlite3"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "DJANGO_", "CELERY_", "PYTEST_")) and k != "DATABASE_URL"}
    # The Makefile's demo target with this interpreter; -o skips (re)building the virtualenv.
    result = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "demo", f"PY={sys.executable}", *make_args],
        cwd=project, env=env, capture_output=True, text=True, timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "demo: done; every process stopped" in output
    assert not processes_in(project), processes_in(project)
    assert (project / ".demo" / "shop.sqlite3").exists() and (project / ".demo" / "broker").is_dir()

    traces = parse_traces(output)
    expected = list(flatten(ORDER_TRACE))
    assert expected in traces.values(), f"no trace shaped like the order trace in:\n{output}"
    # The rejected order: the same, except that the worker leaves the stock alone.
    rejected = [span for span in expected if span[2] != "UPDATE inventory_stock"]
    assert rejected in traces.values(), output
    # The order-status stream (server-sent events, an async view): its query under its request.
    events = [(0, "shop-web", "GET api/orders/<int:pk>/events/", "SERVER"),
              (1, "shop-web", "SELECT orders_order", "CLIENT")]
    assert events in traces.values(), output
    # celery beat's periodic task: a trace of its own, named after its schedule entry.
    beat = [(0, "shop-beat", "reject-stale-orders", "INTERNAL"),
            (1, "shop-beat", "send inventory.reject_stale_orders", "PRODUCER"),
            (2, "shop-worker", "process inventory.reject_stale_orders", "CONSUMER"),
            (3, "shop-worker", "UPDATE orders_order", "CLIENT")]
    assert beat in traces.values(), output
    # The quote (an async view): pricing over grpc.aio and the stock API over httpx, at once.
    pricing = [(1, "shop-web", "shop.pricing.v1.Pricing/GetQuote", "CLIENT"),
               (2, "shop-pricing", "shop.pricing.v1.Pricing/GetQuote", "SERVER"),
               (3, "shop-pricing", "SELECT pricing_price", "CLIENT")]
    stock = [(1, "shop-web", "GET", "CLIENT"),
             (2, "shop-web", "GET api/stock/<str:sku>/", "SERVER"),
             (3, "shop-web", "SELECT inventory_stock", "CLIENT")]
    quote = [(0, "shop-web", "GET api/orders/<int:pk>/quote", "SERVER"),
             (1, "shop-web", "SELECT orders_order", "CLIENT")]
    assert quote + pricing + stock in traces.values() or quote + stock + pricing in traces.values(), output
