"""gunicorn with several workers, --max-requests recycling and SIGTERM to the
arbiter: the span of every finished request is exported. The schedule delay is a
minute, so spans can only arrive through the flush each worker does at exit."""

import signal

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
    assert web.process.wait(30) == 0, web.process.output()
    spans = otlp.wait_for(lambda spans: len(server_spans(spans)) >= 30)
    assert {s.trace_id for s in server_spans(spans)} == trace_ids
    assert len(server_spans(spans)) == 30
    output = web.process.output()
    assert output.count("Booting worker") >= 8, "30 requests at 4 per worker take at least 8 workers"
    assert "has no working span exporter" not in output
