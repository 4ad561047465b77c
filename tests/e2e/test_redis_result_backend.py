"""Redis as Celery's broker and result backend at once: a real worker stores
the result in Redis, the publisher reads it back, and the trace is the publish and the
run, nothing more (storing a result in Redis makes no span; in the database it would)."""

from __future__ import annotations

import pytest
from celery import Celery

from tracing_app import get_tracer
from tracing_app.testing import Expect, assert_trace, capture_spans


@pytest.mark.parametrize("stack", ["redis"], indirect=True)
def test_result_stored_in_redis_and_the_trace_is_publish_and_run(stack, otlp):
    options = stack.broker.transport_options()
    worker = stack.start_worker("-P", "solo", CELERY_RESULT_BACKEND=stack.broker.url)
    worker.wait_output("ready.")
    app = Celery("e2e-results", broker=stack.broker.url, backend=stack.broker.url, set_as_current=False)
    app.conf.broker_transport_options = options
    app.conf.result_backend_transport_options = options
    try:
        with capture_spans() as captured, get_tracer().start_as_current_span("test") as root:
            result = app.send_task("e2e.sleep", args=[0], queue=stack.queue, ignore_result=False)
        assert result.get(timeout=60) == 0
    finally:
        app.close()
    trace_id = f"{root.get_span_context().trace_id:032x}"
    spans = otlp.wait_for(lambda spans: any(s.trace_id == trace_id and s.kind == "CONSUMER" for s in spans))
    expected = Expect("test", children=[
        Expect("send e2e.sleep", kind="PRODUCER", attributes={"messaging.system": "redis"}, children=[
            Expect("process e2e.sleep", kind="CONSUMER", service="shop-worker", error=False,
                   attributes={"messaging.system": "redis", "celery.task.state": "SUCCESS"}),
        ]),
    ])
    assert_trace(captured.records() + [s for s in spans if s.trace_id == trace_id], expected)
