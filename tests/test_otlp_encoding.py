"""Our OTLP encoder writes the same message as the SDK's encoder, field for field."""

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceState

from tracing_app.devtools.records import from_otlp
from tracing_app.pipeline.export.otlp_encoding import PAUSE_EVERY, Encoder

ATTRIBUTES = {
    "str": "héllo", "empty": "", "true": True, "false": False, "zero": 0, "int": 42, "negative": -7,
    "big": 2**62, "float": 3.25, "negative_float": -0.5, "strs": ("a", "b"), "ints": (1, -2, 3),
    "floats": (0.5,), "bools": (True, False), "empty_list": (),
}


def finished_spans():
    exporter = InMemorySpanExporter()
    spans = []
    for service in ("web", "worker"):
        provider = TracerProvider(resource=Resource.create({"service.name": service, "k8s.pod": 3}),
                                  span_limits=SpanLimits(max_attributes=40, max_events=2, max_links=1),
                                  shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("scope.a", "1.2", schema_url="https://opentelemetry.io/schemas/1.21.0")
        other = provider.get_tracer("scope.b")
        remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1),
                             trace_state=TraceState([("vendor", "x"), ("other", "y")]))
        local_link = SpanContext(0x123, 0x456, is_remote=False)
        parent = tracer.start_span("GET /", kind=SpanKind.SERVER, attributes=ATTRIBUTES,
                                   context=set_span_in_context(NonRecordingSpan(remote)),
                                   links=[Link(local_link, {"link.attr": 1}), Link(remote)])
        parent.add_event("exception", {"exception.type": "KeyError", "n": 1})
        parent.add_event("second")
        parent.add_event("third (dropped)")
        for index in range(30):
            parent.set_attribute(f"extra.{index}", index)  # beyond the limit: dropped and counted
        parent.set_status(Status(StatusCode.ERROR, "boom"))
        child = other.start_span("SELECT t", kind=SpanKind.CLIENT, context=set_span_in_context(parent))
        child.set_status(Status(StatusCode.OK))
        child.end()
        tracer.start_span("send x", kind=SpanKind.PRODUCER).end()
        tracer.start_span("process x", kind=SpanKind.CONSUMER).end()
        tracer.start_span("internal").end()
        parent.end()
    spans.extend(exporter.get_finished_spans())
    return spans


def test_same_message_as_the_sdk_encoder():
    spans = finished_spans()
    ours = ExportTraceServiceRequest.FromString(Encoder().encode(spans))
    assert ours == encode_spans(spans)


def test_cached_resources_and_scopes_encode_the_same_the_second_time():
    spans = finished_spans()
    encoder = Encoder()
    assert encoder.encode(spans) == encoder.encode(spans)


def test_decodes_through_the_receiver():
    records = from_otlp(Encoder().encode(finished_spans()))
    server = next(r for r in records if r.name == "GET /" and r.service == "web")
    assert server.kind == "SERVER" and server.error and server.status_message == "boom"
    assert server.attributes["negative"] == -7 and server.attributes["ints"] == (1, -2, 3)
    assert server.parent_id == f"{0xDEF:016x}"


def test_empty_batch_is_an_empty_request():
    assert Encoder().encode([]) == b""


def test_pauses_every_few_spans_and_encodes_the_same():
    spans = finished_spans() * 10  # 100 spans
    pauses = []
    paused = Encoder().encode(spans, pause=lambda: pauses.append(1))
    assert len(pauses) == len(spans) // PAUSE_EVERY
    assert paused == Encoder().encode(spans)

