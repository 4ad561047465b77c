"""Celery publish and run spans, in process. The real-worker proof is in tests/e2e."""

import pytest
from celery import Celery

from tracing_app import celery_signals, get_tracer

app = Celery("unit", broker="memory://", set_as_current=False)
app.conf.task_always_eager = False


@app.task(name="unit.add")
def add(x, y):
    return x + y


@app.task(name="unit.fail")
def fail():
    raise ValueError("no stock")


@pytest.fixture
def sent_headers():
    """The headers of each message as kombu would send them (captured at after_task_publish)."""
    sent = []

    def keep(headers=None, **kwargs):
        sent.append(dict(headers))

    from celery import signals

    signals.after_task_publish.connect(keep, weak=False)
    yield sent
    signals.after_task_publish.disconnect(keep)


def test_publish_is_a_producer_span_and_injects_traceparent(captured_spans, sent_headers):
    with app.connection_for_write() as conn, get_tracer().start_as_current_span("request"):
        add.apply_async((1, 2), connection=conn, headers={"x-custom": "kept"})
    spans = {s.name: s for s in captured_spans.records()}
    producer = spans["send unit.add"]
    assert producer.kind == "PRODUCER" and producer.parent_id == spans["request"].span_id
    assert producer.attributes["celery.task.name"] == "unit.add"
    headers = sent_headers[0]
    assert headers["traceparent"].startswith(f"00-{producer.trace_id}-{producer.span_id}-")
    assert headers["x-custom"] == "kept"


def test_send_task_by_name_for_unregistered_task_still_propagates(captured_spans, sent_headers):
    with app.connection_for_write() as conn:
        app.send_task("elsewhere.not_registered_here", connection=conn)
    producer = captured_spans.records()[0]
    assert producer.name == "send elsewhere.not_registered_here"
    assert sent_headers[0]["traceparent"].split("-")[2] == producer.span_id
    assert producer.end_ns > producer.start_ns


def test_run_is_a_consumer_span_child_of_the_caller_when_eager(captured_spans):
    with get_tracer().start_as_current_span("caller"):
        assert add.apply((2, 3)).get() == 5
    spans = {s.name: s for s in captured_spans.records()}
    assert spans["process unit.add"].kind == "CONSUMER"
    assert spans["process unit.add"].parent_id == spans["caller"].span_id
    assert spans["process unit.add"].attributes["celery.task.state"] == "SUCCESS"


def test_run_continues_the_context_from_the_message_headers(captured_spans):
    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    add.apply((1, 1), headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    span = captured_spans.records()[0]
    assert (span.trace_id, span.parent_id) == (trace_id, parent)


def test_failing_task_is_an_error_with_the_exception(captured_spans):
    result = fail.apply()
    assert result.failed()
    span = captured_spans.records()[0]
    assert span.error and "ValueError: no stock" in span.status_message
    assert span.attributes["error.type"] == "ValueError"
    assert [name for name, _ in span.events] == ["exception"]


def test_uninstalled_integration_creates_no_spans(captured_spans):
    celery_signals.integration.uninstall()
    try:
        add.apply((1, 2))
        assert captured_spans.records() == []
    finally:
        from tracing_app.conf import get_config

        celery_signals.integration.install(get_config())
