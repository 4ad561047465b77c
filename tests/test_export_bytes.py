"""Export bounded by bytes and every span accounted for, against real OTLP receivers:
requests split to BATCH_MAX_EXPORT_BYTES, 413 / RESOURCE_EXHAUSTED split and retried,
partial_success counted, the queue capped in bytes, and for every drop reason
``ended == exported + dropped`` once the processor is shut down."""

import logging

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from tracing_app.devtools.receiver import Fault, OTLPGrpcReceiver, OTLPReceiver
from tracing_app.pipeline.export.otlp_grpc import GrpcTransport
from tracing_app.pipeline.export.otlp_http import HttpTransport
from tracing_app.pipeline.export.processor import DROP_REASONS, SPLIT_FLOOR, ExportProcessor

from .test_export import RecordedSleeps, dead_endpoint, end_spans, make, stop_processors  # noqa: F401

KIB = 1024


@pytest.fixture
def receiver():
    with OTLPReceiver() as receiver:
        yield receiver


def end_long_spans(tracer, count, text_bytes, prefix="long"):
    """Spans like a query over thousands of ids: one long ``db.query.text``."""
    for index in range(count):
        text = f"SELECT * FROM shop_order WHERE id IN ({', '.join(['%s'] * (text_bytes // 4))})"
        tracer.start_span(f"{prefix}-{index}", attributes={"db.query.text": text[:text_bytes]}).end()


def assert_accounted(processor):
    """After shutdown nothing is pending: every span that ended was exported or dropped for a reason."""
    processor.shutdown(5000)
    stats = processor.snapshot()
    assert stats.pending == 0
    assert stats.ended == stats.exported + sum(stats.dropped_by_reason.values()), stats
    return stats


@pytest.mark.parametrize("limit", [40 * KIB, 200 * KIB])
def test_requests_stay_under_max_export_bytes(receiver, limit):
    processor, tracer = make(receiver.endpoint, max_export_bytes=limit)
    end_long_spans(tracer, 60, 9 * KIB)  # ~550 KiB in one count-based batch
    assert processor.force_flush()
    assert max(receiver.body_sizes) <= limit and len(receiver.body_sizes) > 550 * KIB // limit
    assert sorted(s.name for s in receiver.spans) == sorted(f"long-{i}" for i in range(60))
    assert assert_accounted(processor).exported == 60


@pytest.mark.parametrize("body_limit", [100 * KIB, 300 * KIB])
def test_413_splits_the_request_and_sends_both_halves(receiver, body_limit, caplog):
    receiver.max_body_bytes = body_limit
    processor, tracer = make(receiver.endpoint, sleep=RecordedSleeps())  # default: 3 MiB per request
    with caplog.at_level(logging.WARNING, logger="tracing_app"):
        end_long_spans(tracer, 80, 8 * KIB)  # ~650 KiB: over either limit
        assert processor.force_flush()
    assert receiver.too_large >= 1
    assert len(receiver.spans) == 80 and len({s.name for s in receiver.spans}) == 80
    stats = assert_accounted(processor)
    assert stats.exported == 80 and stats.dropped == 0
    assert caplog.text.count("refused a request of") == 1, "reported once per process, not per split"
    assert "cannot export spans" not in caplog.text, "a size refusal is not an outage"


def test_413_for_one_span_alone_drops_only_that_span(receiver):
    receiver.max_body_bytes = 100 * KIB
    processor, tracer = make(receiver.endpoint)
    end_long_spans(tracer, 5, 4 * KIB, prefix="small")
    end_long_spans(tracer, 1, 150 * KIB, prefix="huge")
    end_long_spans(tracer, 5, 4 * KIB, prefix="after")
    assert processor.force_flush() is False, "a span was lost"
    assert sorted(s.name for s in receiver.spans) == sorted(
        [f"small-{i}" for i in range(5)] + [f"after-{i}" for i in range(5)])
    stats = assert_accounted(processor)
    assert stats.dropped_too_large == 1 and stats.exported == 10


def test_span_over_max_export_bytes_is_dropped_without_a_request(receiver):
    processor, tracer = make(receiver.endpoint, max_export_bytes=50 * KIB)
    end_long_spans(tracer, 1, 60 * KIB, prefix="huge")
    end_long_spans(tracer, 2, 1 * KIB, prefix="ok")
    assert processor.force_flush() is False
    assert sorted(s.name for s in receiver.spans) == ["ok-0", "ok-1"] and max(receiver.body_sizes) < 50 * KIB
    assert assert_accounted(processor).dropped_too_large == 1


def test_413_for_a_size_accepted_before_is_not_split(receiver):
    # A proxy that answers 413 to everything for a while: splitting would multiply requests
    # down to single spans. The collector took bigger requests before, so it is not about size.
    processor, tracer = make(receiver.endpoint, sleep=RecordedSleeps())
    end_long_spans(tracer, 40, 2 * KIB, prefix="before")
    assert processor.force_flush()
    receiver.fault = Fault(status=413)
    end_long_spans(tracer, 20, 2 * KIB, prefix="during")
    processor.force_flush()
    assert receiver.requests == 2
    assert assert_accounted(processor).dropped_rejected == 20


def test_413_for_a_small_request_is_final(receiver):
    processor, tracer = make(receiver.endpoint, sleep=RecordedSleeps())
    receiver.fault = Fault(status=413)
    end_long_spans(tracer, 10, 1 * KIB)  # ~11 KiB, under SPLIT_FLOOR: no collector limit is that low
    assert processor.force_flush() is False
    assert receiver.requests == 1 and sum(receiver.body_sizes) < SPLIT_FLOOR
    assert assert_accounted(processor).dropped_rejected == 10


@pytest.mark.parametrize("rejected", [1, 4])
def test_partial_success_counts_the_rejected_spans(receiver, rejected, caplog):
    receiver.fault = Fault(rejected_spans=rejected, times=1)
    processor, tracer = make(receiver.endpoint)
    with caplog.at_level(logging.WARNING, logger="tracing_app"):
        end_spans(tracer, 10)
        assert processor.force_flush() is False, "spans were rejected"
        end_spans(tracer, 3, prefix="after")
        assert processor.force_flush(), "nothing lost since the previous flush"
    stats = assert_accounted(processor)
    assert (stats.exported, stats.dropped_partially_rejected) == (13 - rejected, rejected)
    assert len(receiver.spans) == 13 - rejected
    assert f"rejected {rejected} of its 10 span(s)" in caplog.text


@pytest.mark.parametrize("span_bytes", [4 * KIB, 30 * KIB])
def test_queue_is_capped_in_bytes(span_bytes):
    processor, tracer = make(dead_endpoint(), max_queue_bytes=256 * KIB, export_timeout=0.1)
    processor._thread = object()  # keep the export thread from draining: only the cap is under test
    end_long_spans(tracer, 100, span_bytes)
    stats = processor.snapshot()
    per_span = stats.queued_bytes / stats.pending
    assert per_span > span_bytes, "the estimate counts the text"
    assert stats.queued_bytes <= 256 * KIB < stats.queued_bytes + per_span, "full: one more would not fit"
    assert stats.dropped_queue_full == 100 - stats.pending > 0
    processor._thread = None
    assert_accounted(processor)


def grpc_processor(receiver, **options):
    options.setdefault("schedule_delay", 60.0)
    options.setdefault("sleep", RecordedSleeps())
    processor = ExportProcessor(lambda: GrpcTransport(receiver.endpoint), **options)
    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return processor, provider.get_tracer("test")


@pytest.fixture
def grpc_receiver():
    store = OTLPReceiver()  # only its span list and wait_for: spans arrive over gRPC
    server = OTLPGrpcReceiver("127.0.0.1", 0, store.add).start()
    server.store = store
    yield server
    server.stop()


def test_grpc_batches_fit_the_default_4_mib_message_limit(grpc_receiver):
    # Default BATCH_MAX_EXPORT_BYTES (3 MiB); a queue that holds all ~10 MiB, so that none is
    # dropped whatever the export thread's pace against this loop (the default 8 MiB is not the point).
    processor, tracer = grpc_processor(grpc_receiver, max_queue_bytes=64 * 1024 * KIB)
    try:
        end_long_spans(tracer, 200, 50 * KIB)  # ~10 MiB in one count-based batch
        assert processor.force_flush(30_000)
        assert len(grpc_receiver.store.spans) == 200 and processor.stats.failed_attempts == 0
        assert grpc_receiver.requests >= 4
    finally:
        stats = assert_accounted(processor)
    assert stats.exported == 200


def test_grpc_resource_exhausted_splits_the_request(grpc_receiver, caplog):
    # A byte limit above the server's 4 MiB: the server refuses the message, we split it.
    processor, tracer = grpc_processor(grpc_receiver, max_export_bytes=64 * 1024 * KIB)
    try:
        with caplog.at_level(logging.WARNING, logger="tracing_app"):
            end_long_spans(tracer, 120, 50 * KIB)  # ~6 MiB
            assert processor.force_flush(30_000)
        assert len(grpc_receiver.store.spans) == 120 and processor.stats.failed_attempts >= 1
        assert "RESOURCE_EXHAUSTED" in caplog.text
    finally:
        stats = assert_accounted(processor)
    assert stats.exported == 120


def test_grpc_partial_success_and_final_codes_are_counted():
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    answers = [("partial", 2), ("abort", grpc.StatusCode.INVALID_ARGUMENT)]

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802
            kind, value = answers.pop(0)
            if kind == "abort":
                context.abort(value, "bad request")
            partial = trace_service_pb2.ExportTracePartialSuccess(rejected_spans=value, error_message="too old")
            return trace_service_pb2.ExportTraceServiceResponse(partial_success=partial)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        processor, tracer = grpc_processor(type("R", (), {"endpoint": f"127.0.0.1:{port}"}))
        end_spans(tracer, 5)
        assert processor.force_flush(10_000) is False
        end_spans(tracer, 3)
        assert processor.force_flush(10_000) is False
        stats = assert_accounted(processor)
    finally:
        server.stop(0)
    assert (stats.exported, stats.dropped_partially_rejected, stats.dropped_rejected) == (3, 2, 3)


# -- one test per drop reason: the identity holds and the reason is the one counted ----------

def _queue_full(receiver):
    processor, tracer = make(receiver.endpoint, max_queue_size=5)
    processor._thread = object()
    end_spans(tracer, 12)
    processor._thread = None
    return processor


def _rejected(receiver):
    receiver.fault = Fault(status=400)
    processor, tracer = make(receiver.endpoint)
    end_spans(tracer, 7)
    return processor


def _partially_rejected(receiver):
    receiver.fault = Fault(rejected_spans=2)
    processor, tracer = make(receiver.endpoint)
    end_spans(tracer, 7)
    return processor


def _timed_out(receiver):
    receiver.fault = Fault(status=503)
    processor, tracer = make(receiver.endpoint, sleep=RecordedSleeps(), export_timeout=0.5)
    end_spans(tracer, 7)
    return processor


def _shutdown(receiver):
    receiver.fault = Fault(delay=20.0)
    processor, tracer = make(receiver.endpoint, shutdown_timeout=0.3, request_timeout=30.0)
    end_spans(tracer, 7)
    processor.force_flush(0)
    return processor


def _too_large(receiver):
    processor, tracer = make(receiver.endpoint, max_export_bytes=20 * KIB)
    end_long_spans(tracer, 2, 30 * KIB)
    end_spans(tracer, 5)
    return processor


def _no_exporter(receiver):
    processor, tracer = make("127.0.0.1:4318")  # no scheme: HttpTransport cannot be built
    end_spans(tracer, 7)
    return processor


def _error(receiver):
    processor, tracer = make(receiver.endpoint)
    transport = processor.transport()
    transport.encode = lambda *args, **kwargs: 1 / 0  # a bug in our own code, not the collector
    end_spans(tracer, 7)
    return processor


SCENARIOS = {reason: globals()[f"_{reason}"] for reason in DROP_REASONS}


@pytest.mark.parametrize("reason", DROP_REASONS)
def test_every_drop_reason_keeps_ended_equal_exported_plus_dropped(receiver, reason, caplog):
    with caplog.at_level(logging.CRITICAL, logger="tracing_app"):
        processor = SCENARIOS[reason](receiver)
        processor.force_flush(5000)
        stats = assert_accounted(processor)
    assert stats.dropped_by_reason[reason] > 0, stats
    assert stats.ended == stats.exported + stats.dropped
    assert stats.exported == len(receiver.spans)


# -- a transport that cannot be built; nothing listening on this machine ---------------------

@pytest.mark.parametrize("endpoint", ["127.0.0.1:4318/v1/traces", "localhost:4318", "ftp://collector:4318/v1/traces",
                                      "http:///v1/traces"])
def test_http_exporter_that_cannot_be_built_is_reported_once_and_flush_fails(endpoint, caplog):
    processor = ExportProcessor(lambda: HttpTransport(endpoint), schedule_delay=60.0)
    check_unbuildable(processor, caplog, "http:// or https://")


@pytest.mark.parametrize("endpoint", ["ftp://collector:4317", "http://:4317", "http://collector:port"])
def test_grpc_exporter_that_cannot_be_built_is_reported_once_and_flush_fails(endpoint, caplog):
    processor = ExportProcessor(lambda: GrpcTransport(endpoint), schedule_delay=60.0)
    check_unbuildable(processor, caplog, "OTLP/gRPC endpoint")


def check_unbuildable(processor, caplog, reason):
    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    with caplog.at_level(logging.DEBUG, logger="tracing_app"):
        end_spans(tracer, 3)
        assert processor.force_flush(5000) is False
        end_spans(tracer, 2)
        assert processor.force_flush(5000) is False
        stats = assert_accounted(processor)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "has no working span exporter" in lines[0] and reason in lines[0], lines
    assert stats.dropped_no_exporter == 5


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_nothing_listening_locally_is_one_line_per_process(host, caplog):
    port = dead_endpoint().rsplit(":", 1)[1]
    endpoint = f"http://{host}:{port}/v1/traces"
    processor = ExportProcessor(lambda: HttpTransport(endpoint), schedule_delay=60.0, endpoint=endpoint,
                                sleep=RecordedSleeps(), export_timeout=0.5)
    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    with caplog.at_level(logging.DEBUG, logger="tracing_app"):
        for _ in range(3):  # three flushes, as a command's periodic exports would be
            end_spans(tracer, 4)
            assert processor.force_flush(5000) is False
        end_spans(tracer, 2)
        stats = assert_accounted(processor)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "nothing listens at" in lines[0] and "EXPORTER" in lines[0], lines
    assert "dropped during the outage" in caplog.text, "the outage's cost is still logged, at debug level"
    assert stats.ended == 14 and stats.exported == 0


def test_nothing_listening_elsewhere_logs_the_outage_and_its_cost(caplog):
    endpoint = "http://collector.invalid:4318/v1/traces"  # does not resolve: not development on this machine
    processor = ExportProcessor(lambda: HttpTransport(endpoint), schedule_delay=60.0, endpoint=endpoint,
                                sleep=RecordedSleeps(), export_timeout=0.5)
    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    with caplog.at_level(logging.WARNING, logger="tracing_app"):
        end_spans(provider.get_tracer("test"), 4)
        processor.force_flush(5000)
        assert_accounted(processor)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "cannot export spans" in lines[0], lines
    assert "still unreachable" in lines[1] and "4 span(s) were dropped during the outage" in lines[1]
    assert "ended 4 = exported 0 + dropped 4" in lines[1]


def test_a_process_that_made_no_span_says_nothing(caplog):
    for endpoint in (dead_endpoint() + "/v1/traces", "127.0.0.1:4318"):
        processor = ExportProcessor(lambda endpoint=endpoint: HttpTransport(endpoint), endpoint=endpoint)
        with caplog.at_level(logging.DEBUG, logger="tracing_app"):
            assert processor.force_flush(1000)
            processor.shutdown()
    assert caplog.records == []


def test_estimated_size_follows_the_encoded_size():
    from tracing_app.pipeline.export.otlp_encoding import encode_span, estimated_size

    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}), shutdown_on_exit=False)
    tracer = provider.get_tracer("test")
    shapes = {
        "long text": {"db.query.text": "SELECT 1 " * 2000},
        "numbers": {f"n.{i}": i * 1000 for i in range(20)},
        "sequences": {"ids": tuple(range(100)), "names": ("a" * 50,) * 20},
        "query": {"db.system.name": "postgresql", "db.query.text": "SELECT * FROM t WHERE id = $1",
                  "server.port": 5432, "db.namespace": "shop"},
    }
    for shape, attributes in shapes.items():
        span = tracer.start_span(shape, attributes=attributes)
        span.add_event("exception", {"exception.stacktrace": "Traceback ...\n" * 50})
        span.end()
        encoded, estimate = len(encode_span(span)), estimated_size(span)
        assert encoded / 2 <= estimate <= encoded * 2, (shape, encoded, estimate)


def test_spans_of_another_make_are_queued_and_sent(receiver, monkeypatch):
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, TraceFlags

    from tracing_app.pipeline.export import processor as export

    context = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))
    processor, tracer = make(receiver.endpoint)
    # A ReadableSpan built by hand (no attributes, plain tuples for events and links).
    processor.on_end(ReadableSpan(name="plain", context=context, attributes=None, start_time=1, end_time=2,
                                  resource=Resource.create({})))

    def cannot_estimate(span):
        raise AttributeError("_attributes")  # a span class that keeps its fields elsewhere

    monkeypatch.setattr(export, "estimated_size", cannot_estimate)
    tracer.start_span("odd").end()  # the host's span.end() never fails for the estimate
    assert processor.snapshot().ended == 2
    assert processor.force_flush()
    assert sorted(s.name for s in receiver.spans) == ["odd", "plain"]


# -- mixed scenarios: several reasons in one process, the identity checked while spans are pending --

def _watch(processor, stop):
    """Snapshots taken from another thread while the processor works; each must balance with pending."""
    import threading

    seen = []

    def poll():
        while not stop.is_set():
            seen.append(processor.snapshot())
            stop.wait(0.005)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return seen, thread


@pytest.mark.parametrize("scenario", ["413_then_partial", "queue_full_while_slow", "shutdown_while_stalled"])
def test_mixed_reasons_balance_at_every_instant_and_at_the_end(receiver, scenario, caplog):
    import threading

    stop = threading.Event()
    with caplog.at_level(logging.CRITICAL, logger="tracing_app"):
        if scenario == "413_then_partial":
            # Long statements over the receiver's body limit (split), a span too large even alone
            # (413 by itself: rejected), and every accepted request losing its last span.
            receiver.max_body_bytes = 64 * KIB
            receiver.fault = Fault(rejected_spans=1)
            processor, tracer = make(receiver.endpoint, sleep=RecordedSleeps())
            seen, watcher = _watch(processor, stop)
            end_long_spans(tracer, 30, 9 * KIB)
            end_long_spans(tracer, 1, 100 * KIB, prefix="huge")
            end_spans(tracer, 10)
            processor.force_flush(30_000)
        elif scenario == "queue_full_while_slow":
            # A slow collector: spans pile up past a queue capped in bytes while a batch is in flight.
            receiver.fault = Fault(delay=0.5, times=1)
            processor, tracer = make(receiver.endpoint, max_queue_bytes=64 * KIB, max_export_batch_size=4,
                                     schedule_delay=0.01)
            seen, watcher = _watch(processor, stop)
            end_long_spans(tracer, 4, 4 * KIB)
            end_long_spans(tracer, 40, 4 * KIB, prefix="more")
            processor.force_flush(30_000)
        else:
            # Shutdown while a request is in flight to a collector that stalls and more spans wait.
            receiver.fault = Fault(delay=20.0)
            processor, tracer = make(receiver.endpoint, shutdown_timeout=0.3, request_timeout=30.0)
            seen, watcher = _watch(processor, stop)
            end_long_spans(tracer, 20, 6 * KIB)
            processor.force_flush(0)
        stats = assert_accounted(processor)
    stop.set()
    watcher.join(timeout=30)
    assert seen and all(s.ended == s.exported + s.dropped + s.pending for s in seen), seen
    reasons = {reason for reason, count in stats.dropped_by_reason.items() if count}
    if scenario == "413_then_partial":
        assert stats.ended == 41 and max(receiver.body_sizes) > 64 * KIB  # a 413 came back at least once
        # The huge span comes back 413 on its own: dropped as too large, the rest sent in halves.
        assert reasons == {"partially_rejected", "too_large"} and stats.dropped_too_large == 1, stats
        assert stats.exported == len(receiver.spans)  # the receiver keeps only the spans it accepted
    elif scenario == "queue_full_while_slow":
        assert stats.ended == 44 and "queue_full" in reasons and stats.exported == len(receiver.spans), stats
        assert any(s.pending for s in seen)
    else:
        assert stats.ended == 20 and "shutdown" in reasons, stats


def test_a_request_that_fails_after_shutdown_logs_nothing_more(caplog):
    # Shutdown counted the stalled request's spans and said so; when that request fails later
    # (the collector goes away), the thread left behind must not report an outage of a
    # processor that is gone, nor promise retries.
    receiver = OTLPReceiver().start()
    receiver.fault = Fault(delay=60.0)
    processor, tracer = make(receiver.endpoint, shutdown_timeout=0.3, request_timeout=120.0)
    end_spans(tracer, 3)
    processor.force_flush(0)
    with caplog.at_level(logging.DEBUG, logger="tracing_app"):
        processor.shutdown()
        said_at_shutdown = len(caplog.records)
        receiver.stop()  # the stalled request now fails
        processor._thread.join(timeout=120)
    assert not processor._thread.is_alive()
    assert [r.getMessage() for r in caplog.records[said_at_shutdown:] if r.levelno >= logging.INFO] == []
    assert processor.snapshot().dropped_shutdown == 3
