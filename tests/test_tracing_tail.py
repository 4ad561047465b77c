"""``manage.py tracing_tail`` as a user runs it: a real process receiving real OTLP/HTTP
from the SDK's exporter, printing waterfalls."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000_000_000_000  # span times are given explicitly so the waterfall is exact
MS = 1_000_000


class Tail:
    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DJANGO_"))}
        env.update(DJANGO_SETTINGS_MODULE="project.settings", OTEL_SDK_DISABLED="true", PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(
            [sys.executable, "manage.py", "tracing_tail", "--port", "0", "--grpc-port", "0", *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        first, second = self.popen.stdout.readline(), self.popen.stdout.readline()
        match = re.search(r"OTLP/HTTP .* OTEL_EXPORTER_OTLP_ENDPOINT=(\S+)", first)
        grpc_match = re.search(r"OTLP/gRPC .* OTEL_EXPORTER_OTLP_ENDPOINT=(\S+)", second)
        assert match and grpc_match, first + second + self.popen.stderr.read()
        self.endpoint, self.grpc_endpoint = match.group(1), grpc_match.group(1)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_line(self, needle: str, timeout: float = 30) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: any(needle in line for line in self.lines), timeout), self.lines

    def stop(self) -> str:
        self.popen.send_signal(signal.SIGTERM)
        assert self.popen.wait(30) == 0, self.popen.stderr.read()
        self._reader.join(10)
        return "\n".join(self.lines)


@pytest.fixture
def tail_factory():
    tails: list[Tail] = []

    def start(*args: str) -> Tail:
        tails.append(Tail(*args))
        return tails[-1]

    yield start
    for tail in tails:
        if tail.popen.poll() is None:
            tail.popen.kill()
            tail.popen.wait(10)


def tracer_for(service: str, endpoint: str, grpc: bool = False):
    """A provider exporting with the SDK's own OTLP exporter: real bytes on the wire."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}), shutdown_on_exit=False)
    exporter = GrpcSpanExporter(endpoint=endpoint, insecure=True) if grpc else OTLPSpanExporter(endpoint + "/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, provider.get_tracer("test")


def span(tracer, name, start_ms, end_ms, parent=None, kind=SpanKind.INTERNAL, error=""):
    context = set_span_in_context(parent) if parent is not None else None
    created = tracer.start_span(name, context=context, kind=kind, start_time=T0 + start_ms * MS)
    if error:
        created.set_status(Status(StatusCode.ERROR, error))
    return created


def send_order_trace(endpoint: str, grpc: bool = False) -> str:
    """web: POST (0-40 ms) > INSERT (5-10) and send (12-14); worker: process (20-40, failed) > UPDATE (25-35)."""
    web_provider, web = tracer_for("shop-web", endpoint, grpc)
    worker_provider, worker = tracer_for("shop-worker", endpoint, grpc)
    root = span(web, "POST api/orders/", 0, 40, kind=SpanKind.SERVER)
    insert = span(web, "INSERT orders_order", 5, 10, root, SpanKind.CLIENT)
    insert.end(T0 + 10 * MS)
    send = span(web, "send inventory.reserve_stock", 12, 14, root, SpanKind.PRODUCER)
    send.end(T0 + 14 * MS)
    process = span(worker, "process inventory.reserve_stock", 20, 40, send, SpanKind.CONSUMER, error="Boom")
    update = span(worker, "UPDATE inventory_stock", 25, 35, process, SpanKind.CLIENT)
    update.end(T0 + 35 * MS)
    process.end(T0 + 40 * MS)
    root.end(T0 + 40 * MS)
    web_provider.shutdown()
    worker_provider.shutdown()
    return f"{root.get_span_context().trace_id:032x}"


EXPECTED_ORDER = """\
trace {trace_id} · 5 spans · shop-web, shop-worker · 40.00 ms · 1 error
  shop-web             POST api/orders/ [SERVER]                        40.00 ms |████████████████████|
  shop-web               INSERT orders_order [CLIENT]                    5.00 ms |  ███               |
  shop-web               send inventory.reserve_stock [PRODUCER]         2.00 ms |      █             |
! shop-worker              process inventory.reserve_stock [CONSUMER]   20.00 ms |          ██████████| ERROR Boom
  shop-worker                UPDATE inventory_stock [CLIENT]            10.00 ms |            █████   |"""


def test_prints_a_finished_trace_as_a_waterfall_after_its_quiet_period(tail_factory):
    tail = tail_factory("--quiet", "0.3", "--width", "20")
    trace_id = send_order_trace(tail.endpoint)
    # Printed while the tail keeps running: the quiet period ended the trace, not the shutdown.
    tail.wait_for_line("UPDATE inventory_stock")
    output = tail.stop()
    assert EXPECTED_ORDER.format(trace_id=trace_id) in output, output


def test_receives_otlp_grpc_too(tail_factory):
    tail = tail_factory("--quiet", "600", "--width", "20")
    trace_id = send_order_trace(tail.grpc_endpoint, grpc=True)
    assert EXPECTED_ORDER.format(trace_id=trace_id) in tail.stop()


def send_simple(endpoint: str, service: str, duration_ms: int, error: bool) -> str:
    provider, tracer = tracer_for(service, endpoint)
    root = span(tracer, f"{service} {duration_ms}ms {'failed' if error else 'ok'}", 0, duration_ms,
                kind=SpanKind.SERVER, error="boom" if error else "")
    root.end(T0 + duration_ms * MS)
    provider.shutdown()
    return f"{root.get_span_context().trace_id:032x}"


def test_filters_by_service_duration_and_errors_and_prints_pending_traces_on_exit(tail_factory):
    # A quiet period longer than the test: every trace is printed by the shutdown.
    tail = tail_factory("--quiet", "600", "--service", "worker", "--min-duration", "5", "--errors")
    shown = send_simple(tail.endpoint, "worker", 10, error=True)
    hidden = [
        send_simple(tail.endpoint, "worker", 10, error=False),  # no error
        send_simple(tail.endpoint, "web", 10, error=True),  # other service
        send_simple(tail.endpoint, "worker", 1, error=True),  # too short
    ]
    output = tail.stop()
    assert f"trace {shown} " in output and "! worker" in output, output
    for trace_id in hidden:
        assert trace_id not in output, output


def test_refuses_ports_in_use(tail_factory):
    first = tail_factory()
    port = first.endpoint.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "manage.py", "tracing_tail", "--port", port], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "OTEL_SDK_DISABLED": "true"}, timeout=60,
    )
    assert result.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    grpc_port = first.grpc_endpoint.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "manage.py", "tracing_tail", "--port", "0", "--grpc-port", grpc_port], cwd=ROOT,
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "OTEL_SDK_DISABLED": "true"},
    )
    assert result.returncode != 0 and f"cannot receive OTLP/gRPC on 127.0.0.1:{grpc_port}" in result.stderr
