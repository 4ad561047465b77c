"""gunicorn with several workers, --max-requests recycling and SIGTERM to the
arbiter: the span of every finished request is exported. The schedule delay is a
minute, so spans can only arrive through the flush each worker does at exit."""

import signal

from .stack import DEADLINE

NO_PERIODIC_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "60000"}


def server_spans(spans):
    return [s for s in spans if s.kind == "SERVER"]


def test_recycled_and_stopped_gunicorn_workers_export_every_request(stack, otlp):
    web = stack.start_web("-w", "3", "--max-requests", "4", "--max-requests-jitter", "0", **NO_PERIODIC_EXPORT)
    trace_ids = set()
    for _ in range(30):
        status, headers, _ = web.request("GET", "/api/orders/999/")
        assert status == 404
        trace_ids.add(headers["traceresponse"].split("-")[1])
    # Recycled workers (4 requests each) have flushed already; the live ones flush at SIGTERM.
    web.process.signal(signal.SIGTERM)
    assert web.process.wait(DEADLINE) == 0, web.process.output()
    spans = otlp.wait_for(lambda spans: len(server_spans(spans)) >= 30)
    assert {s.trace_id for s in server_spans(spans)} == trace_ids
    assert len(server_spans(spans)) == 30
    output = web.process.output()
    assert output.count("Booting worker") >= 8, "30 requests at 4 per worker take at least 8 workers"
    assert "has no working span exporter" not in output


def test_gunicorn_worker_with_an_exporter_that_cannot_be_built_says_so_once(stack):
    # No scheme: the OTLP/HTTP transport cannot be built. Each worker reports it at its start,
    # once; its requests are served and never log it again.
    web = stack.start_web("-w", "2", OTEL_EXPORTER_OTLP_ENDPOINT="127.0.0.1:4318", OTEL_BSP_SCHEDULE_DELAY="100")
    for _ in range(6):
        status, _, _ = web.request("GET", "/api/orders/999/")
        assert status == 404
    web.process.signal(signal.SIGTERM)
    assert web.process.wait(DEADLINE) == 0, web.process.output()
    output = web.process.output()
    lines = [line for line in output.splitlines() if "has no working span exporter" in line]
    assert len(lines) == output.count("Booting worker") == 2, output
    assert all("http:// or https://" in line for line in lines), output
