"""Celery publish and run spans, in process. The real-worker proof is in tests/e2e."""

import datetime
import time
import uuid

import pytest
from celery import Celery
from kombu import Connection, Queue
from kombu.messaging import Producer
from opentelemetry import trace

from tracing_app import get_tracer
from tracing_app.conf import resolve
from tracing_app.context.suppression import untraced
from tracing_app.integrations.celery import signals as celery_signals
from tracing_app.integrations.celery.headers import SENT_AT_HEADER
from tracing_app.integrations.celery.timing import wait_attributes

from .e2e.stack import BROKER_URL, backends

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
    # No exception message by default (RECORD_EXCEPTION_MESSAGES): it may quote user data.
    assert span.error and span.status_message == "ValueError"
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


# -- beyond one task ------------------------------------------------------------


@pytest.fixture
def queue_name():
    name = f"test-celery-{uuid.uuid4().hex[:10]}"
    yield name
    if backends().broker == "rabbitmq":
        with Connection(BROKER_URL) as conn:
            conn.default_channel.queue_delete(name)


def test_send_task_by_name_producer_span_times_the_real_publish(queue_name, captured_spans, monkeypatch):
    """Upstream instrumentation ends this span before the publish (or makes none for an
    unregistered task); ours starts before ``Producer._publish`` and ends after it returned."""
    url = BROKER_URL if backends().broker == "rabbitmq" else "memory://"
    web = Celery("web", broker=url, set_as_current=False)  # the task is not registered here
    assert "billing.charge" not in web.tasks
    calls: list[tuple[int, int]] = []
    original = Producer._publish

    def timed(self, *args, **kwargs):
        started = time.time_ns()
        try:
            return original(self, *args, **kwargs)
        finally:
            calls.append((started, time.time_ns()))

    monkeypatch.setattr(Producer, "_publish", timed)
    with web.connection_for_write() as conn:
        Queue(queue_name)(conn.default_channel).declare()
        result = web.send_task("billing.charge", args=[1], queue=queue_name, ignore_result=True)
        deadline = time.monotonic() + 10
        while (message := Queue(queue_name)(conn.default_channel).get(no_ack=True)) is None:
            assert time.monotonic() < deadline, "the task message did not arrive"
            time.sleep(0.05)
    [send] = captured_spans.records()
    [(publish_started, publish_ended)] = calls
    assert send.name == "send billing.charge" and send.kind == "PRODUCER"
    assert send.start_ns <= publish_started <= publish_ended <= send.end_ns
    assert message.headers["id"] == result.id == send.attributes["messaging.message.id"]
    assert message.headers["traceparent"].startswith(f"00-{send.trace_id}-{send.span_id}-")
    assert message.headers[SENT_AT_HEADER].isdigit()


def test_wait_attributes_separate_the_scheduled_wait_from_the_queue_wait():
    sent = 1_700_000_000_000_000_000
    eta = datetime.datetime.fromtimestamp(sent / 1e9 + 60, tz=datetime.UTC)
    request = type("Request", (), {SENT_AT_HEADER: str(sent), "eta": eta.isoformat()})()
    started = sent + 62_000_000_000
    attributes = wait_attributes(request, started)
    assert attributes["celery.task.scheduled_wait_ms"] == pytest.approx(60_000, abs=0.01)
    assert attributes["celery.task.queue_wait_ms"] == pytest.approx(2_000, abs=0.01)
    assert attributes["celery.task.eta"] == eta.isoformat()
    no_eta = type("Request", (), {SENT_AT_HEADER: str(sent), "eta": None})()
    assert wait_attributes(no_eta, sent + 5_000_000) == {"celery.task.queue_wait_ms": 5.0}
    garbage = type("Request", (), {SENT_AT_HEADER: "soon", "eta": "tomorrow"})()
    assert wait_attributes(garbage, started) == {}


def test_new_trace_settings_are_lists_of_names():
    config = resolve({"CELERY_NEW_TRACE_TASKS": ["reports.*"], "CELERY_NEW_TRACE_QUEUES": "bulk, exports"}, {})
    assert config.celery_new_trace_tasks == ("reports.*",)
    assert config.celery_new_trace_queues == ("bulk", "exports")
    bad = resolve({"CELERY_NEW_TRACE_TASKS": [1]}, {})
    assert [(p.check_id, p.key) for p in bad.problems] == [("tracing_app.E003", "CELERY_NEW_TRACE_TASKS")]


@pytest.mark.django_db(transaction=True)
def test_on_commit_publish_in_a_request_joins_the_request_trace(client, captured_spans):
    """The demo's view publishes reserve_stock in transaction.on_commit: after the COMMIT, in the request's trace."""
    from apps.inventory.models import Stock
    from tracing_app.testing import Expect, assert_trace

    Stock.objects.update_or_create(sku="widget", defaults={"quantity": 5})
    captured_spans.clear()
    response = client.post("/api/orders/", {"sku": "widget", "quantity": 1}, content_type="application/json")
    assert response.status_code == 201
    assert_trace(captured_spans.records(), Expect("POST api/orders/", kind="SERVER", children=[
        Expect("SELECT inventory_stock", kind="CLIENT"),
        # tests/settings.py: no pricing server, the order is taken with its price pending
        Expect("shop.pricing.v1.Pricing/GetQuote", kind="CLIENT", error=True),
        Expect("INSERT orders_order", kind="CLIENT"),
        Expect("INSERT tracing_app_outboxevent", kind="CLIENT"),
        Expect("send inventory.reserve_stock", kind="PRODUCER"),
    ]))


@pytest.mark.django_db
def test_chord_header_runs_are_popped_once_and_stale_ones_forgotten(captured_spans):
    from tracing_app.integrations.celery.signals import pop_chord_header_runs, record_chord_header_run
    from tracing_app.models import ChordHeaderRun

    record_chord_header_run("g1", "t1", "00-" + "a" * 32 + "-" + "1" * 16 + "-01")
    record_chord_header_run("g1", "t1", "00-" + "a" * 32 + "-" + "2" * 16 + "-01")  # t1 retried: last attempt wins
    record_chord_header_run("g1", "t2", "00-" + "a" * 32 + "-" + "3" * 16 + "-01")
    record_chord_header_run("abandoned", "t9", "00-" + "a" * 32 + "-" + "9" * 16 + "-01")
    ChordHeaderRun.objects.filter(group_id="abandoned").update(
        created_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    assert [tp.split("-")[2] for tp in pop_chord_header_runs("g1")] == ["2" * 16, "3" * 16]
    assert pop_chord_header_runs("g1") == []
    assert not ChordHeaderRun.objects.exists(), "the abandoned chord's row is gone too"
    own_queries = ["UPDATE tracing_app_chordheaderrun", "SELECT tracing_app_chordheaderrun"]
    assert captured_spans.names() == own_queries, "the bookkeeping queries are not traced"


def test_publish_under_an_unsampled_parent_makes_no_span_but_sends_the_decision(captured_spans, sent_headers):
    unsampled = trace.NonRecordingSpan(trace.SpanContext(0xABC, 0xDEF, is_remote=False))
    with app.connection_for_write() as conn, trace.use_span(unsampled):
        add.apply_async((1, 2), connection=conn)
    assert sent_headers[0]["traceparent"] == f"00-{0xABC:032x}-{0xDEF:016x}-00"
    assert captured_spans.records() == []


def test_publish_inside_untraced_makes_no_span_and_sends_no_context(captured_spans, sent_headers):
    """untraced() (UNTRACED_COMMANDS such as `shell`, our own bookkeeping) silences task
    publishes as it does queries: a `manage.py shell -c "task.delay()"` sent a span before."""
    with app.connection_for_write() as conn, get_tracer().start_as_current_span("housekeeping"), untraced():
        add.apply_async((1, 2), connection=conn)
        app.send_task("elsewhere.not_registered_here", connection=conn)
    assert [s.name for s in captured_spans.records()] == ["housekeeping"]
    assert len(sent_headers) == 2 and not any("traceparent" in headers for headers in sent_headers)
