"""Celery beyond one task, on real PostgreSQL with a real worker process, over RabbitMQ
and over Redis (the same trees on both: issue 16; only the transport's own attributes differ).

The test process publishes (its spans are captured in memory), one worker runs
the tasks of ``celery_tasks`` (its spans arrive over OTLP), and each test asserts
the exact tree of the one trace both sides produce.

The worker samples new root traces at ratio 0 (OTEL_TRACES_SAMPLER_ARG=0): every
span it exports either continues the publisher's trace or inherited the
publisher's sampling decision through a link. It runs ``-P solo`` so that chord
header tasks finish in publish order and the tree is the same on every run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import pytest
from celery import Celery, chain, group
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from tracing_app import get_tracer
from tracing_app.testing import Expect, assert_trace, capture_spans

from .stack import DEADLINE, Stack, StackReceiver, make_broker, make_database, require_real_services, run_id

pytestmark = pytest.mark.services

ROUTING_KEY = "messaging.rabbitmq.destination.routing_key"


class CeleryStack:
    def __init__(self, stack: Stack, otlp: StackReceiver, bulk_queue: str, system: str) -> None:
        self.stack = stack
        self.otlp = otlp
        self.queue = stack.queue
        self.bulk_queue = bulk_queue
        self.system = system  # messaging.system of every message span
        # The test process publishes through an app of its own (the test settings' broker is in memory).
        self.publisher = Celery("e2e-publisher", broker=stack.broker.url, set_as_current=False)
        self.publisher.conf.broker_transport_options = stack.broker.transport_options()

    # Published by name, results ignored unless a test asks: stored results add
    # their own queries to the worker's spans.
    def sig(self, name: str, *args: object, ignore_result: bool = True, **options: object):
        options.setdefault("queue", self.queue)
        return self.publisher.signature(name, args=args, options={"ignore_result": ignore_result, **options})

    def send(self, name: str, *args: object, ignore_result: bool = True, **options: object):
        options.setdefault("queue", self.queue)
        return self.publisher.send_task(name, args=args, ignore_result=ignore_result, **options)

    def trace(self, captured, trace_id: str, expected: Expect) -> list:
        """The spans of ``trace_id`` from both processes, once as many as ``expected`` has arrived."""
        wanted = count(expected)
        self.otlp.wait_for(lambda spans: len(captured_in(captured, trace_id)) + len(
            [s for s in spans if s.trace_id == trace_id]) >= wanted)
        time.sleep(0.3)  # one more export interval: a span beyond the expected ones would show up
        return captured_in(captured, trace_id) + [s for s in self.otlp.spans if s.trace_id == trace_id]


def count(expect: Expect) -> int:
    return 1 + sum(count(child) for child in expect.children)


def captured_in(captured, trace_id: str) -> list:
    return [s for s in captured.records() if s.trace_id == trace_id]


@pytest.fixture(scope="module", params=["rabbitmq", "redis"])
def celery_stack(request) -> Iterator[CeleryStack]:
    chosen = require_real_services("Celery canvas, retries and ETA on a real broker")
    with StackReceiver() as otlp:
        broker = make_broker(chosen, request.param)
        database = make_database(chosen, request.param)
        stack = Stack(database, broker, f"e2e-{run_id()}", otlp.endpoint, otlp)
        bulk_queue = f"{stack.queue}.bulk"
        try:
            migrate = stack.manage("migrate", "--noinput", OTEL_SDK_DISABLED="true")
            assert migrate.returncode == 0, migrate.stdout + migrate.stderr
            worker = stack.start("worker", [
                sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", f"{stack.queue},{bulk_queue}",
                "-P", "solo", "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
                # Its own node name: its control queue (revoke) is not shared with other runs' workers.
                "-n", f"{stack.queue}@%h",
            ], stack.env("shop-worker", DJANGO_SETTINGS_MODULE="tests.e2e.worker_settings",
                         OTEL_TRACES_SAMPLER_ARG="0", E2E_BULK_QUEUE=bulk_queue))
            worker.wait_output("ready.")
            celery_stack = CeleryStack(stack, otlp, bulk_queue, request.param)
            yield celery_stack
        finally:
            if "celery_stack" in locals():
                celery_stack.publisher.close()
            stack.stop()
            print(stack.logs())
            broker.cleanup(stack.queue, bulk_queue)
            database.drop()


def root_span(name: str):
    return get_tracer().start_as_current_span(name)


def trace_id_of(span) -> str:
    return f"{span.get_span_context().trace_id:032x}"


def span_named(spans, name: str, **attributes):
    return next(s for s in spans if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items()))


def test_send_task_by_name_propagates_to_the_worker(celery_stack, captured_spans):
    assert "e2e.add" not in celery_stack.publisher.tasks, "published by name, as from a web process"
    with root_span("test") as root:
        celery_stack.send("e2e.add", 2, 3, ignore_result=False)
    expected = Expect("test", children=[
        Expect("send e2e.add", kind="PRODUCER", service="shop-web", children=[
            Expect("process e2e.add", kind="CONSUMER", service="shop-worker", error=False, children=[
                Expect("SELECT django_celery_results_taskresult", kind="CLIENT"),
                Expect("INSERT django_celery_results_taskresult", kind="CLIENT"),
            ]),
        ]),
    ])
    spans = celery_stack.trace(captured_spans, trace_id_of(root), expected)
    assert_trace(spans, expected)
    # Only the transport's own attributes differ between brokers.
    for name in ("send e2e.add", "process e2e.add"):
        span = span_named(spans, name)
        assert span.attributes["messaging.system"] == celery_stack.system, name
        assert span.attributes["messaging.destination.name"] == celery_stack.queue, name
    send = span_named(spans, "send e2e.add")
    assert send.attributes.get(ROUTING_KEY) == (celery_stack.queue if celery_stack.system == "rabbitmq" else None)


def test_revoked_and_expired_tasks_end_the_publisher_trace_with_a_revoked_span(celery_stack, captured_spans):
    with root_span("revoked") as revoked_root:
        revoked = celery_stack.send("e2e.noop", countdown=3)
    celery_stack.publisher.control.revoke(revoked.id)
    with root_span("expired") as expired_root:
        celery_stack.send("e2e.noop", countdown=3, expires=1)
    for root, reason in ((revoked_root, "revoked"), (expired_root, "expired")):
        expected = Expect(root.name, children=[Expect("send e2e.noop", kind="PRODUCER", children=[
            Expect("process e2e.noop", kind="CONSUMER", service="shop-worker", error=False,
                   attributes={"celery.task.state": "REVOKED", "messaging.system": celery_stack.system}),
        ])])
        spans = celery_stack.trace(captured_spans, trace_id_of(root), expected)
        assert_trace(spans, expected)
        assert span_named(spans, "process e2e.noop").events == (("revoked", {"reason": reason}),)


def test_retries_are_spans_of_one_trace_linked_to_the_previous_attempt(celery_stack, captured_spans):
    with root_span("test") as root:
        celery_stack.send("e2e.flaky", 2)
    attempt = {n: {"celery.task.attempt": n} for n in (1, 2, 3)}
    expected = Expect("test", children=[
        Expect("send e2e.flaky", kind="PRODUCER", children=[
            Expect("process e2e.flaky", kind="CONSUMER", error=False, attributes=attempt[1], children=[
                Expect("send e2e.flaky", kind="PRODUCER", service="shop-worker", children=[
                    Expect("process e2e.flaky", kind="CONSUMER", error=False, attributes=attempt[2], children=[
                        Expect("send e2e.flaky", kind="PRODUCER", service="shop-worker", children=[
                            Expect("process e2e.flaky", kind="CONSUMER", error=False, attributes=attempt[3]),
                        ]),
                    ]),
                ]),
            ]),
        ]),
    ])
    spans = celery_stack.trace(captured_spans, trace_id_of(root), expected)
    assert_trace(spans, expected)
    runs = {s.attributes["celery.task.attempt"]: s for s in spans if s.name == "process e2e.flaky"}
    assert runs[1].links == ()
    assert runs[2].links == ((runs[1].trace_id, runs[1].span_id),)
    assert runs[3].links == ((runs[2].trace_id, runs[2].span_id),)
    assert [s.attributes["celery.task.state"] for s in (runs[1], runs[2], runs[3])] == ["RETRY", "RETRY", "SUCCESS"]
    assert [name for name, _ in runs[1].events] == ["retry"]


def test_countdown_run_joins_the_trace_and_separates_scheduled_wait_from_queue_wait(celery_stack, captured_spans):
    with root_span("test") as root:
        celery_stack.send("e2e.noop", countdown=1)
    expected = Expect("test", children=[
        Expect("send e2e.noop", kind="PRODUCER", children=[Expect("process e2e.noop", kind="CONSUMER")]),
    ])
    spans = celery_stack.trace(captured_spans, trace_id_of(root), expected)
    assert_trace(spans, expected)
    run = span_named(spans, "process e2e.noop")
    send = span_named(spans, "send e2e.noop")
    eta_ns = send.start_ns + 1_000_000_000
    assert "celery.task.eta" in run.attributes
    # The publish computes the ETA a moment before it takes its timestamp.
    assert 900 < run.attributes["celery.task.scheduled_wait_ms"] <= 1000
    queue_wait = run.attributes["celery.task.queue_wait_ms"]
    assert 0 <= queue_wait < (run.start_ns - send.start_ns) / 1e6 - 900
    assert run.start_ns >= eta_ns - 5_000_000


def test_chain_group_and_chord_keep_one_trace(celery_stack, captured_spans):
    with root_span("chain") as chain_root:
        chain(celery_stack.sig("e2e.add", 1, 1), celery_stack.sig("e2e.add", 2, ignore_result=False)).apply_async()
    with root_span("group") as group_root:
        group(celery_stack.sig("e2e.noop", 1), celery_stack.sig("e2e.noop", 2)).apply_async()
    with root_span("chord") as chord_root:
        celery_stack.send("e2e.start_chord", 2)

    results = [Expect("SELECT django_celery_results_taskresult"), Expect("INSERT django_celery_results_taskresult")]
    chain_tree = Expect("chain", children=[Expect("send e2e.add", kind="PRODUCER", children=[
        Expect("process e2e.add", kind="CONSUMER", children=[
            Expect("send e2e.add", kind="PRODUCER", service="shop-worker", children=[
                Expect("process e2e.add", kind="CONSUMER", children=results),
            ]),
        ]),
    ])])
    assert_trace(celery_stack.trace(captured_spans, trace_id_of(chain_root), chain_tree), chain_tree)

    group_tree = Expect("group", children=[
        Expect("send e2e.noop", kind="PRODUCER", children=[Expect("process e2e.noop", kind="CONSUMER")]),
        Expect("send e2e.noop", kind="PRODUCER", children=[Expect("process e2e.noop", kind="CONSUMER")]),
    ])
    assert_trace(celery_stack.trace(captured_spans, trace_id_of(group_root), group_tree), group_tree)

    # Header tasks store results and count down django-celery-results' ChordCounter; the
    # last one (the worker runs -P solo: the second) joins the results and publishes the callback.
    db = {name: Expect(name, kind="CLIENT", service="shop-worker") for name in (
        "SELECT django_celery_results_taskresult", "INSERT django_celery_results_taskresult",
        "SELECT django_celery_results_chordcounter", "UPDATE django_celery_results_chordcounter",
        "DELETE django_celery_results_chordcounter")}
    stored = [db["SELECT django_celery_results_taskresult"], db["INSERT django_celery_results_taskresult"]]
    chord_tree = Expect("chord", children=[Expect("send e2e.start_chord", kind="PRODUCER", children=[
        Expect("process e2e.start_chord", kind="CONSUMER", children=[
            Expect("INSERT django_celery_results_chordcounter"),
            Expect("send e2e.add", kind="PRODUCER", children=[Expect("process e2e.add", kind="CONSUMER", children=[
                *stored, db["SELECT django_celery_results_chordcounter"],
                db["UPDATE django_celery_results_chordcounter"],
            ])]),
            Expect("send e2e.add", kind="PRODUCER", children=[Expect("process e2e.add", kind="CONSUMER", children=[
                *stored, db["SELECT django_celery_results_chordcounter"],
                db["DELETE django_celery_results_chordcounter"],
                db["SELECT django_celery_results_taskresult"], db["SELECT django_celery_results_taskresult"],
                Expect("send e2e.total", kind="PRODUCER", service="shop-worker", children=[
                    Expect("process e2e.total", kind="CONSUMER", error=False, children=stored),
                ]),
            ])]),
        ]),
    ])])
    spans = celery_stack.trace(captured_spans, trace_id_of(chord_root), chord_tree)
    assert_trace(spans, chord_tree)
    headers = [s for s in spans if s.name == "process e2e.add"]
    callback = span_named(spans, "process e2e.total")
    assert set(callback.links) == {(s.trace_id, s.span_id) for s in headers}


def test_failure_rejection_and_unknown_task_are_errors_with_the_exception(celery_stack, captured_spans):
    with root_span("test") as root:
        celery_stack.send("e2e.fail")
        celery_stack.send("e2e.reject")
        celery_stack.send("e2e.not_registered_anywhere")
    expected = Expect("test", children=[
        Expect("send e2e.fail", kind="PRODUCER", children=[
            Expect("process e2e.fail", kind="CONSUMER", error=True, attributes={"error.type": "ValueError"}),
        ]),
        Expect("send e2e.reject", kind="PRODUCER", children=[
            Expect("process e2e.reject", kind="CONSUMER", error=True, attributes={"error.type": "Reject"}),
        ]),
        Expect("send e2e.not_registered_anywhere", kind="PRODUCER", children=[
            Expect("process e2e.not_registered_anywhere", kind="CONSUMER", error=True),
        ]),
    ])
    spans = celery_stack.trace(captured_spans, trace_id_of(root), expected)
    assert_trace(spans, expected)
    for name in ("process e2e.fail", "process e2e.reject"):
        span = span_named(spans, name)
        assert [event for event, _ in span.events] == ["exception"], name
    failed = span_named(spans, "process e2e.fail")
    assert failed.status_message == "ValueError", "no exception message by default (RECORD_EXCEPTION_MESSAGES)"
    event = dict(failed.events)["exception"]
    assert "exception.message" not in event and "celery_tasks.py" in event["exception.stacktrace"]


def test_task_published_inside_a_task_is_its_child(celery_stack, captured_spans):
    with root_span("test") as root:
        celery_stack.send("e2e.publish_child")
    expected = Expect("test", children=[Expect("send e2e.publish_child", children=[
        Expect("process e2e.publish_child", kind="CONSUMER", children=[
            Expect("send e2e.noop", kind="PRODUCER", service="shop-worker", children=[
                Expect("process e2e.noop", kind="CONSUMER"),
            ]),
        ]),
    ])])
    assert_trace(celery_stack.trace(captured_spans, trace_id_of(root), expected), expected)


def test_custom_headers_arrive_untouched(celery_stack, captured_spans):
    custom = {"x-tenant": "acme", "x-request-id": "r-42", "priority_note": "léger"}
    with root_span("test") as root:
        result = celery_stack.send("e2e.echo_headers", headers=dict(custom), ignore_result=False)
    expected = Expect("test", children=[Expect("send e2e.echo_headers", children=[
        Expect("process e2e.echo_headers", kind="CONSUMER", children=[
            Expect("SELECT django_celery_results_taskresult"), Expect("INSERT django_celery_results_taskresult"),
        ]),
    ])])
    assert_trace(celery_stack.trace(captured_spans, trace_id_of(root), expected), expected)
    [(stored,)] = celery_stack.stack.database.query(
        "select result from django_celery_results_taskresult where task_id = %s", result.id)
    received = json.loads(stored)
    assert {key: received.get(key) for key in custom} == custom
    assert set(received) - set(custom) <= {"traceparent", "tracestate", "baggage", "tracing_app_sent_ns"}


def linked_run(otlp: StackReceiver, run_name: str, send) -> object:
    """The run span that links to ``send`` (it is in a trace of its own)."""
    def find(spans):
        return next((s for s in spans if s.name == run_name and s.links == ((send.trace_id, send.span_id),)), None)
    return find(otlp.wait_for(lambda spans: find(spans) is not None))


def test_new_trace_tasks_and_queues_link_to_the_publisher_and_inherit_its_sampling(celery_stack, captured_spans):
    """The worker samples new roots at ratio 0: these runs are kept only because their publisher was."""
    with root_span("by task") as by_task:
        celery_stack.send("e2e.fan_out_report", ignore_result=False)
    with root_span("by queue") as by_queue:
        celery_stack.send("e2e.noop", queue=celery_stack.bulk_queue)
    results = [Expect("SELECT django_celery_results_taskresult"), Expect("INSERT django_celery_results_taskresult")]
    cases = ((by_task, "e2e.fan_out_report", celery_stack.queue, results),
             (by_queue, "e2e.noop", celery_stack.bulk_queue, []))
    for root, task, queue, run_children in cases:
        publisher_tree = Expect(root.name, children=[Expect(f"send {task}", kind="PRODUCER")])
        assert_trace(captured_in(captured_spans, trace_id_of(root)), publisher_tree)
        send = span_named(captured_spans.records(), f"send {task}", **{"messaging.destination.name": queue})
        run = linked_run(celery_stack.otlp, f"process {task}", send)
        assert run.trace_id != send.trace_id and run.parent_id == ""
        run_tree = Expect(f"process {task}", kind="CONSUMER", service="shop-worker", children=run_children)
        assert_trace(celery_stack.trace(captured_spans, run.trace_id, run_tree), run_tree)


def test_new_trace_of_an_unsampled_publisher_is_not_sampled(celery_stack):
    with capture_spans(sampler=ALWAYS_OFF) as unsampled:
        result = celery_stack.send("e2e.fan_out_report", ignore_result=False)
    assert unsampled.records() == []
    deadline = time.monotonic() + DEADLINE
    while not celery_stack.stack.database.query(
            "select 1 from django_celery_results_taskresult where task_id = %s and status = 'SUCCESS'", result.id):
        assert time.monotonic() < deadline, f"the task did not run:\n{celery_stack.stack.logs()}"
        time.sleep(0.1)
    # A sampled one after it: once its spans arrive, the worker has exported everything before it.
    with capture_spans():
        marker = celery_stack.send("e2e.fan_out_report")
    celery_stack.otlp.wait_for(lambda spans: any(s.attributes.get("messaging.message.id") == marker.id for s in spans))
    assert not [s for s in celery_stack.otlp.spans if s.attributes.get("messaging.message.id") == result.id]


def test_message_the_worker_rejects_is_an_error_in_the_publisher_trace(celery_stack, captured_spans):
    """A message on the task queue that is no task message (no ``task`` header): task_rejected."""
    from tracing_app.integrations.kombu import publish

    with celery_stack.publisher.connection_for_write() as conn, conn.Producer() as producer:
        with root_span("test") as root:
            publish(producer, b'{"not": "a task"}', exchange="", routing_key=celery_stack.queue,
                    message_id="stray-1", content_type="application/json", content_encoding="utf-8")
    expected = Expect("test", children=[Expect(f"send {celery_stack.queue}", kind="PRODUCER", children=[
        Expect("process unknown", kind="CONSUMER", service="shop-worker", error=True,
               attributes={"celery.task.state": "REJECTED"}),
    ])])
    assert_trace(celery_stack.trace(captured_spans, trace_id_of(root), expected), expected)
