"""Celery workers export the span of every task they ran: children recycled by
--max-tasks-per-child, a warm shutdown while tasks run, a child killed by the
hard time limit, the solo and threads pools, and OTLP/gRPC with forked children.

The schedule delay is set to a minute in most tests, so a span can only arrive
through the flush a process does when it exits: that flush is what is tested.
"""

import re
import signal
import time
import uuid

import pytest

from tracing_app.testing import capture_spans

from .stack import DEADLINE, grpc_receiver

NO_PERIODIC_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "60000"}
SUCCEEDED = re.compile(r"Task e2e\.sleep\[([0-9a-f-]+)\] succeeded")


def consumer_spans(spans, task_ids):
    return {s.attributes["messaging.message.id"]: s for s in spans
            if s.kind == "CONSUMER" and s.attributes.get("messaging.message.id") in task_ids}


def wait_for_tasks(otlp, task_ids, timeout=DEADLINE):
    task_ids = set(task_ids)
    spans = otlp.wait_for(lambda spans: len(consumer_spans(spans, task_ids)) == len(task_ids), timeout=timeout)
    return consumer_spans(spans, task_ids)


def test_recycled_children_export_every_task_span(stack, otlp):
    worker = stack.start_worker("-P", "prefork", "-c", "2", "--max-tasks-per-child=1", **NO_PERIODIC_EXPORT)
    task_ids = [stack.publish("e2e.sleep", 0) for _ in range(8)]
    found = wait_for_tasks(otlp, task_ids)
    assert all(not span.error for span in found.values())
    pids = {span.resource.get("process.pid") for span in found.values()}
    assert worker.popen.poll() is None
    assert len(found) == 8, pids


def test_warm_shutdown_exports_the_tasks_that_were_running(stack, otlp, tmp_path):
    worker = stack.start_worker("-P", "prefork", "-c", "2", **NO_PERIODIC_EXPORT)
    markers = [tmp_path / f"started-{i}" for i in range(4)]
    task_ids = [stack.publish("e2e.sleep", 2, str(marker)) for marker in markers]
    worker.wait_for_output("ready.")
    deadline_output = None
    for _ in range(300):
        if sum(marker.exists() for marker in markers) >= 2:
            break
        deadline_output = worker.output()
        import time

        time.sleep(0.1)
    else:
        pytest.fail(f"two tasks never started:\n{deadline_output}")
    worker.signal(signal.SIGTERM)
    assert worker.wait(DEADLINE) == 0, worker.output()
    ran = set(SUCCEEDED.findall(worker.output()))
    assert len(ran) >= 2 and ran <= set(task_ids)
    found = wait_for_tasks(otlp, ran)
    assert set(found) == ran


def test_task_killed_by_hard_time_limit_ends_as_error_in_its_trace(stack, otlp):
    worker = stack.start_worker("-P", "prefork", "-c", "1", "--time-limit=2")
    with capture_spans() as captured:
        task_id = stack.publish("e2e.sleep", 60)
    producer = next(s for s in captured.records() if s.kind == "PRODUCER")
    found = wait_for_tasks(otlp, [task_id])
    span = found[task_id]
    assert span.error and "TimeLimitExceeded" in span.status_message
    assert span.attributes["error.type"] == "TimeLimitExceeded"
    assert (span.trace_id, span.parent_id) == (producer.trace_id, producer.span_id)
    assert "Hard time limit" in worker.output()
    worker.signal(signal.SIGTERM)
    assert worker.wait(DEADLINE) == 0
    spans_of_task = [s for s in otlp.spans if s.attributes.get("messaging.message.id") == task_id]
    assert len(spans_of_task) == 1, "the killed child must not export a second span for the task"


def test_task_terminated_by_revoke_ends_as_error_in_its_trace(stack, otlp, tmp_path):
    from celery import Celery

    # A node name of its own: workers of other test runs on this broker named celery@<host>
    # would share its control (pidbox) queue and could take the revoke.
    worker = stack.start_worker("-P", "prefork", "-c", "1", "-n", f"{stack.queue}@%h")
    marker = tmp_path / "started"
    with capture_spans() as captured:
        task_id = stack.publish("e2e.sleep", 60, str(marker))
    producer = next(s for s in captured.records() if s.kind == "PRODUCER")
    worker.wait_for_output(f"e2e.sleep[{task_id}] received")
    while not marker.exists():
        assert worker.popen.poll() is None, worker.output()
        time.sleep(0.1)
    control = Celery("e2e-control", broker=stack.broker.url, set_as_current=False)
    control.conf.broker_transport_options = stack.broker.transport_options()
    try:
        control.control.revoke(task_id, terminate=True, signal="SIGKILL")
    finally:
        control.close()
    span = wait_for_tasks(otlp, [task_id])[task_id]
    assert span.error and span.attributes["error.type"] == "Terminated", (dict(span.attributes),
                                                                          worker.output()[-2500:])
    assert span.attributes["celery.task.name"] == "e2e.sleep"
    assert (span.trace_id, span.parent_id) == (producer.trace_id, producer.span_id)
    worker.signal(signal.SIGTERM)
    assert worker.wait(DEADLINE) == 0, worker.output()
    assert len([s for s in otlp.spans if s.attributes.get("messaging.message.id") == task_id]) == 1


@pytest.mark.parametrize("how", ["SIGKILL", "os._exit", "sys.exit"])
def test_task_whose_worker_process_is_lost_ends_as_error_in_its_trace(stack, otlp, how):
    """The child dies mid-task and exports nothing: the main process ends the span (WorkerLostError)."""
    worker = stack.start_worker("-P", "prefork", "-c", "1")
    with capture_spans() as captured:
        task_id = stack.publish("e2e.lose_worker", how)
    producer = next(s for s in captured.records() if s.kind == "PRODUCER")
    span = wait_for_tasks(otlp, [task_id])[task_id]
    assert span.error and span.attributes["error.type"] == ("SystemExit" if how == "sys.exit" else "WorkerLostError")
    assert span.attributes["celery.task.name"] == "e2e.lose_worker"
    assert (span.trace_id, span.parent_id) == (producer.trace_id, producer.span_id)
    worker.wait_for_output("exited with")
    worker.signal(signal.SIGTERM)
    assert worker.wait(DEADLINE) == 0, worker.output()
    spans_of_task = [s for s in otlp.spans if s.attributes.get("messaging.message.id") == task_id]
    assert len(spans_of_task) == 1, "the lost child must not export a second span for the task"


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_solo_and_threads_pools_flush_at_shutdown(stack, otlp, pool):
    worker = stack.start_worker("-P", pool, "-c", "2", **NO_PERIODIC_EXPORT)
    task_ids = [stack.publish("e2e.sleep", 0) for _ in range(3)]
    for task_id in task_ids:
        worker.wait_for_output(f"e2e.sleep[{task_id}] succeeded")
    assert not consumer_spans(otlp.spans, set(task_ids)), "exported before shutdown: the flush is not what is tested"
    worker.signal(signal.SIGTERM)
    assert worker.wait(DEADLINE) == 0, worker.output()
    assert len(wait_for_tasks(otlp, task_ids)) == 3


def test_grpc_each_forked_child_gets_its_own_channel(stack):
    with grpc_receiver() as (received, endpoint):
        stack.start_worker("-P", "prefork", "-c", "2", "--max-tasks-per-child=2",
                           OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
        task_ids = [stack.publish("e2e.sleep", 0) for _ in range(6)]
        found = wait_for_tasks(received, task_ids)
        assert len(found) == 6


def test_child_without_a_working_exporter_is_reported_once_at_start(stack, otlp):
    worker = stack.start_worker("-P", "prefork", "-c", "2", OTEL_EXPORTER_OTLP_ENDPOINT="ftp://collector:4318")
    output = worker.wait_for_output("ready.")
    task_id = stack.publish("e2e.sleep", 0)
    output = worker.wait_for_output(f"e2e.sleep[{task_id}] succeeded")
    warnings = [line for line in output.splitlines() if "has no working span exporter" in line]
    assert len(warnings) == 2, output  # one per child process, at its start
    assert "http:// or https://" in warnings[0]
    assert uuid.UUID(task_id)
