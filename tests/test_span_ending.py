"""Every span that starts, ends: a publish that raises, an exception in
our own hooks, a task run that never reaches postrun. Worker-lost is proven with a
real worker in tests/e2e/test_worker_lifecycle.py."""

from __future__ import annotations

import socket

import pytest
from celery import Celery
from kombu.exceptions import OperationalError

from tracing_app import get_tracer, safety
from tracing_app.integrations.celery import signals as celery_signals
from tracing_app.integrations.kombu import consuming, publish
from tracing_app.testing import Expect, assert_trace


def refused_url(scheme: str) -> str:
    """A broker URL on a loopback port nothing listens on: the connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"{scheme}://guest:guest@127.0.0.1:{port}//" if scheme == "amqp" else f"{scheme}://127.0.0.1:{port}/0"


@pytest.mark.parametrize("scheme", ["amqp", "redis"])
def test_send_task_to_a_refusing_broker_ends_its_producer_span_as_an_error(captured_spans, scheme):
    app = Celery("refused", broker=refused_url(scheme), set_as_current=False)
    app.conf.broker_connection_timeout = 2
    try:
        with get_tracer().start_as_current_span("request"):
            with pytest.raises(OperationalError):
                app.send_task("billing.charge", retry=False)
    finally:
        app.close()
    assert celery_signals._pending_publish.get() is None, "nothing left pending for the next publish"
    assert_trace(captured_spans.records(), Expect("request", children=[
        Expect("send billing.charge", kind="PRODUCER", error=True, attributes={"error.type": "OperationalError"}),
    ]))
    send = next(s for s in captured_spans.records() if s.kind == "PRODUCER")
    assert send.start_ns <= send.end_ns
    assert [name for name, _ in send.events] == ["exception"]


def test_publish_that_fails_to_encode_ends_its_span_and_the_next_publish_is_clean(captured_spans):
    app = Celery("encode", broker="memory://", set_as_current=False)
    app.conf.task_serializer = "json"
    try:
        with get_tracer().start_as_current_span("request"):
            with pytest.raises(Exception) as raised:
                app.send_task("billing.charge", args=[object()])
            app.send_task("billing.refund")
    finally:
        app.close()
    assert_trace(captured_spans.records(), Expect("request", children=[
        Expect("send billing.charge", kind="PRODUCER", error=True,
               attributes={"error.type": type(raised.value).__qualname__}),
        Expect("send billing.refund", kind="PRODUCER", error=False),
    ]))


def test_exception_in_our_publish_hook_still_ends_the_span(captured_spans, monkeypatch):
    def broken_inject(*args, **kwargs):
        raise RuntimeError("bug in tracing_app")

    monkeypatch.setattr(celery_signals, "inject_context", broken_inject)
    monkeypatch.setattr(safety, "RAISE_ERRORS", False)  # as in production: swallowed and logged
    app = Celery("hook", broker="memory://", set_as_current=False)
    try:
        with get_tracer().start_as_current_span("request"):
            app.send_task("billing.charge")
    finally:
        app.close()
    assert celery_signals._pending_publish.get() is None
    assert_trace(captured_spans.records(), Expect("request", children=[
        Expect("send billing.charge", kind="PRODUCER", error=False),
    ]))


class FailingProducer:
    channel = None

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def publish(self, body, **kwargs):
        raise self.exc


@pytest.mark.parametrize("exc", [ConnectionRefusedError(111, "refused"), KeyboardInterrupt()])
def test_kombu_publish_that_raises_ends_its_span(captured_spans, exc):
    with pytest.raises(type(exc)):
        publish(FailingProducer(exc), b"{}", exchange="shop.events", routing_key="order.created")
    [span] = captured_spans.records()
    assert span.error and span.attributes["error.type"] == type(exc).__qualname__


class RecordingProducer:
    channel = None

    def __init__(self) -> None:
        self.published: list[dict] = []

    def publish(self, body, **kwargs):
        self.published.append(kwargs)


def test_exception_in_our_kombu_hooks_still_publishes_and_ends_the_span(captured_spans, monkeypatch):
    from tracing_app.integrations import kombu as kombu_integration

    def broken(*args, **kwargs):
        raise RuntimeError("bug in tracing_app")

    monkeypatch.setattr(kombu_integration, "inject_context", broken)
    monkeypatch.setattr(safety, "RAISE_ERRORS", False)
    producer = RecordingProducer()
    publish(producer, b"{}", exchange="shop.events", routing_key="order.created")
    assert len(producer.published) == 1, "the message is still sent"
    [span] = captured_spans.records()
    assert span.name == "send order.created" and span.end_ns >= span.start_ns


def test_exception_in_our_consume_hook_still_runs_the_handler(captured_spans, monkeypatch):
    from types import SimpleNamespace

    from tracing_app.integrations import kombu as kombu_integration

    def broken(*args, **kwargs):
        raise RuntimeError("bug in tracing_app")

    monkeypatch.setattr(kombu_integration, "extract", broken)
    monkeypatch.setattr(safety, "RAISE_ERRORS", False)
    handled = []
    message = SimpleNamespace(headers={}, body=b"{}", properties={}, delivery_info={"routing_key": "order.created"})
    with consuming(message):
        handled.append(True)
    with pytest.raises(KeyError), consuming(message):
        raise KeyError("the handler's own error still reaches the caller")
    assert handled == [True]
    assert captured_spans.records() == [], "no span started, none left open"


def test_celery_patches_are_undone_at_uninstall_and_made_again_at_install():
    """sender.py and beat.py each wrap one Celery function: put back at uninstall, once at install."""
    from celery.app.amqp import AMQP
    from celery.beat import Scheduler

    from tracing_app.conf import get_config
    from tracing_app.integrations.celery import beat as celery_beat
    from tracing_app.integrations.celery import sender as celery_sender

    wrapped = (AMQP._create_task_sender, Scheduler.apply_async)
    originals = (celery_sender._original, celery_beat.ORIGINAL)
    assert None not in originals and wrapped != originals
    celery_signals.integration.uninstall()
    try:
        assert (AMQP._create_task_sender, Scheduler.apply_async) == originals
        assert (celery_sender._original, celery_beat.ORIGINAL) == (None, None)
    finally:
        celery_signals.integration.install(get_config())
    celery_signals.integration.install(get_config())  # a second install wraps nothing twice
    assert (celery_sender._original, celery_beat.ORIGINAL) == originals
    assert AMQP._create_task_sender is not originals[0] and Scheduler.apply_async is not originals[1]


def test_scheduled_send_is_a_root_named_after_its_entry_and_a_failure_is_its_error(captured_spans):
    """In process, with the scheduler beat runs (the real processes: tests/e2e/test_beat.py)."""
    from celery.beat import ScheduleEntry, Scheduler, SchedulingError

    app = Celery("beat-unit", broker="memory://", set_as_current=False)
    scheduler = Scheduler(app, lazy=True)
    entry = ScheduleEntry(name="nightly-report", task="reports.nightly", schedule=60, app=app)
    broken = ScheduleEntry(name="broken-entry", task="reports.broken", schedule=60, args=(object(),), app=app)
    try:
        with get_tracer().start_as_current_span("unrelated current span"):
            scheduler.apply_async(entry)
            with pytest.raises(SchedulingError):
                scheduler.apply_async(broken)
    finally:
        app.close()
    spans = captured_spans.records()
    assert_trace([s for s in spans if s.name == "nightly-report" or s.name == "send reports.nightly"],
                 Expect("nightly-report", kind="INTERNAL", error=False, attributes={
                     "celery.beat.entry.name": "nightly-report", "celery.task.name": "reports.nightly"},
                        children=[Expect("send reports.nightly", kind="PRODUCER")]))
    root = next(s for s in spans if s.name == "nightly-report")
    assert root.parent_id == "", "a trace of its own, whatever was current"
    failed = next(s for s in spans if s.name == "broken-entry")
    assert failed.error and failed.attributes["error.type"] == "SchedulingError"
    assert next(s for s in spans if s.name == "send reports.broken").parent_id == failed.span_id


def test_exception_in_our_task_end_hook_still_ends_the_task_span(captured_spans, monkeypatch):
    """A failure in what _postrun does before ending the span (here: the run's query
    counting) must not leave the span open, nor the run current."""
    from tracing_app.context import work

    def broken(*args, **kwargs):
        raise RuntimeError("bug in tracing_app")

    app = Celery("postrun", broker="memory://", set_as_current=False)

    @app.task(name="postrun.add")
    def add(x, y):
        return x + y

    monkeypatch.setattr(work, "end", broken)
    monkeypatch.setattr(safety, "RAISE_ERRORS", False)
    try:
        assert add.apply((1, 2)).get() == 3
    finally:
        app.close()
    [span] = captured_spans.records()
    assert span.name == "process postrun.add" and span.end_ns >= span.start_ns
    assert celery_signals._current_run.get() is None
