"""ExportProcessor against a real OTLP/HTTP receiver: retries by the OTLP rules,
bounded queue, bounded flush and shutdown, drop counting, outage logging, fork."""

import logging
import os
import socket
import threading

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from tracing_app.devtools.receiver import Fault, OTLPReceiver
from tracing_app.pipeline.export import processor as export
from tracing_app.pipeline.export.otlp_encoding import PAUSE_EVERY
from tracing_app.pipeline.export.otlp_http import HttpTransport, parse_retry_after
from tracing_app.pipeline.export.processor import ExportProcessor


class RecordedSleeps:
    """Stands in for the backoff sleep: records how long it was asked to wait, waits nothing."""

    def __init__(self):
        self.waits = []

    def __call__(self, event, seconds):
        self.waits.append(seconds)
        return event.is_set()


@pytest.fixture(autouse=True)
def stop_processors():
    """Shut down every processor a test made, so no export thread outlives its test."""
    yield
    while _processors:
        _processors.pop().shutdown(100)


_processors = []


@pytest.fixture
def receiver():
    with OTLPReceiver() as receiver:
        yield receiver


def dead_endpoint():
    """A local address where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def make(endpoint, **options):
    options.setdefault("schedule_delay", 60.0)  # export only when flushed, so tests control the timing
    options.setdefault("shutdown_timeout", 5.0)
    processor = ExportProcessor(lambda: HttpTransport(endpoint + "/v1/traces"), **options)
    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    _processors.append(processor)
    return processor, provider.get_tracer("test")


def end_spans(tracer, count, prefix="span"):
    for index in range(count):
        tracer.start_span(f"{prefix}-{index}").end()


def test_spans_arrive_as_otlp_and_are_counted(receiver):
    processor, tracer = make(receiver.endpoint)
    end_spans(tracer, 5)
    assert processor.force_flush()
    assert sorted(s.name for s in receiver.spans) == [f"span-{i}" for i in range(5)]
    assert processor.stats.exported == 5 and processor.stats.dropped == 0


@pytest.mark.parametrize("spans", [64, 192])
def test_encoding_hands_over_the_gil_unless_export_is_behind(receiver, monkeypatch, spans):
    # 64 spans: one batch, a pause every PAUSE_EVERY spans. 192: three batches; while spans
    # wait (an eighth of a batch or more), encoding does not pause; the last batch does.
    pauses = 64 // PAUSE_EVERY
    handed_over = []
    monkeypatch.setattr(export, "hand_over_gil", lambda: handed_over.append(1))
    processor, tracer = make(receiver.endpoint, max_export_batch_size=64)
    processor._thread = object()  # no export thread until every span is queued
    end_spans(tracer, spans)
    processor._thread = None
    assert processor.force_flush()
    assert len(receiver.spans) == spans and len(handed_over) == pauses


def test_spans_ending_while_a_batch_is_sent_wait_for_a_full_batch_or_a_flush(receiver, monkeypatch):
    # A busy worker keeps ending spans while a batch is encoded and sent; those must not go
    # out at once as a small batch of their own (a request per few dozen spans), but with the
    # next full batch, the schedule delay, or a flush.
    processor, tracer = make(receiver.endpoint, max_export_batch_size=64)
    during = []

    def spans_end_meanwhile():
        if len(during) < 20:
            during.append(1)
            tracer.start_span("meanwhile").end()

    monkeypatch.setattr(export, "hand_over_gil", spans_end_meanwhile)
    end_spans(tracer, 64)  # the 64th fills a batch and wakes the export thread
    receiver.wait_for(lambda spans: len(spans) == 64)
    threading.Event().wait(0.5)  # room for a wrong second request to arrive
    assert receiver.requests == 1 and len(processor._queue) == len(during) > 0
    assert processor.force_flush()
    assert receiver.requests == 2 and len(receiver.spans) == 64 + len(during)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried_until_accepted(receiver, status):
    sleeps = RecordedSleeps()
    processor, tracer = make(receiver.endpoint, sleep=sleeps)
    receiver.fault = Fault(status=status, times=3)
    end_spans(tracer, 2)
    assert processor.force_flush()
    assert receiver.requests == 4 and len(receiver.spans) == 2
    assert processor.stats.failed_attempts == 3 and processor.stats.exported == 2


@pytest.mark.parametrize("status", [400, 401, 404, 500])
def test_other_statuses_are_never_retried(receiver, status):
    processor, tracer = make(receiver.endpoint, sleep=RecordedSleeps())
    receiver.fault = Fault(status=status)
    end_spans(tracer, 3)
    processor.force_flush()
    assert receiver.requests == 1
    assert processor.stats.dropped_rejected == 3


def test_retry_after_is_honoured(receiver):
    sleeps = RecordedSleeps()
    processor, tracer = make(receiver.endpoint, sleep=sleeps)
    receiver.fault = Fault(status=503, retry_after="7", times=1)
    end_spans(tracer, 1)
    assert processor.force_flush()
    assert sleeps.waits and sleeps.waits[0] >= 6.9


def test_retry_after_longer_than_the_batch_may_wait_drops_the_batch(receiver):
    processor, tracer = make(receiver.endpoint, sleep=RecordedSleeps(), export_timeout=2.0)
    receiver.fault = Fault(status=429, retry_after="120")
    end_spans(tracer, 4)
    processor.force_flush()
    assert receiver.requests == 1 and processor.stats.dropped_timed_out == 4


def test_backoff_grows_exponentially_with_jitter_and_is_kept_across_batches(receiver):
    sleeps = RecordedSleeps()
    processor, tracer = make(receiver.endpoint, sleep=sleeps, export_timeout=10_000.0, max_export_batch_size=1)
    receiver.fault = Fault(status=503, times=8)
    end_spans(tracer, 2)
    assert processor.force_flush()
    caps = [min(30.0, 0.5 * 2**step) for step in range(8)]
    assert len(sleeps.waits) == 8
    assert all(0 <= wait <= cap for wait, cap in zip(sleeps.waits, caps, strict=True))
    assert len(set(sleeps.waits)) > 1, "jitter: waits differ"
    assert sum(sleeps.waits[4:]) > sum(sleeps.waits[:2]) or max(sleeps.waits) > 0.5


def test_connection_refused_is_retried_then_dropped_and_counted():
    endpoint = dead_endpoint()
    sleeps = RecordedSleeps()
    processor, tracer = make(endpoint, sleep=sleeps, export_timeout=0.5)
    end_spans(tracer, 3)
    processor.force_flush(2000)
    assert processor.stats.failed_attempts >= 1 and processor.stats.dropped_timed_out == 3


def test_queue_is_capped_and_overflow_counted():
    endpoint = dead_endpoint()
    processor, tracer = make(endpoint, max_queue_size=10, export_timeout=0.1)
    processor._thread = object()  # keep the export thread from draining: only the cap is under test
    end_spans(tracer, 50)
    assert len(processor._queue) == 10
    assert processor.stats.dropped_queue_full == 40
    processor._thread = None


def test_shutdown_is_bounded_when_the_collector_never_answers(receiver, caplog):
    processor, tracer = make(receiver.endpoint, shutdown_timeout=0.5, request_timeout=30.0)
    receiver.fault = Fault(delay=30.0)
    end_spans(tracer, 6)
    processor.force_flush(0)  # starts the export: the request now hangs in the receiver
    with caplog.at_level(logging.WARNING, logger="tracing_app"):
        processor.shutdown()
    assert receiver.answered == 0, "shutdown returned before the collector answered"
    assert processor.stats.dropped_shutdown == 6
    assert "6 span(s) not exported at shutdown" in caplog.text
    end_spans(tracer, 2)
    assert processor.stats.dropped_shutdown == 8, "spans ended after shutdown are counted too"


def test_force_flush_is_bounded_when_the_collector_never_answers(receiver):
    processor, tracer = make(receiver.endpoint, request_timeout=30.0)
    receiver.fault = Fault(delay=30.0)
    end_spans(tracer, 1)
    assert processor.force_flush(300) is False
    assert receiver.answered == 0


def test_one_log_line_per_outage_and_one_at_recovery(receiver, caplog):
    processor, tracer = make(receiver.endpoint, sleep=RecordedSleeps(), max_export_batch_size=1)
    receiver.fault = Fault(status=500)  # final: each of the five batches fails once and is dropped
    with caplog.at_level(logging.WARNING, logger="tracing_app"):
        end_spans(tracer, 5)
        processor.force_flush()
        receiver.fault = Fault()
        end_spans(tracer, 1, prefix="after")
        assert processor.force_flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "cannot export spans" in line]) == 1
    assert "HTTP 500" in lines[0] and "retried" in lines[0]
    recovered = [line for line in lines if "recovered" in line]
    assert len(recovered) == 1 and "5 span(s) were dropped" in recovered[0]
    assert [s.name for s in receiver.spans] == ["after-0"]


def test_flush_from_many_threads_while_spans_end(receiver):
    processor, tracer = make(receiver.endpoint, max_export_batch_size=7)
    threads = [threading.Thread(target=end_spans, args=(tracer, 200, f"t{n}")) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert processor.force_flush()
    assert len(receiver.spans) == 800 and processor.stats.exported == 800


def test_forked_child_exports_its_own_spans_with_its_own_thread_and_connection(receiver):
    processor, tracer = make(receiver.endpoint)
    end_spans(tracer, 3, prefix="parent")
    assert processor.force_flush()  # the parent's thread and connection exist now
    end_spans(tracer, 2, prefix="pending")  # queued in the parent at fork time
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            end_spans(tracer, 4, prefix="child")
            ok = processor.force_flush()
            code = 0 if ok and processor.stats.exported == 4 and processor.pid == os.getpid() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert processor.force_flush()
    names = sorted(s.name for s in receiver.spans)
    assert names == sorted([f"parent-{i}" for i in range(3)] + [f"pending-{i}" for i in range(2)]
                           + [f"child-{i}" for i in range(4)]), "each span exactly once"


@pytest.mark.parametrize("value, seconds", [("3", 3.0), ("0", 0.0), ("soon", None), ("", None)])
def test_parse_retry_after_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_date():
    assert parse_retry_after("Wed, 25 Nov 2026 10:00:10 GMT", now=1795600800.0) == pytest.approx(10.0)
