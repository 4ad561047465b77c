"""``SpanRecord``: one finished span, whether it came from this process or over OTLP.

Tests, the assertion helper in ``testing`` and the terminal viewer read spans
in this one shape, so a trace assembled from several processes compares the
same way as one captured in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan

KINDS = {0: "INTERNAL", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclasses.dataclass(frozen=True)
class SpanRecord:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    service: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    error: bool = False
    status_message: str = ""
    events: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # (trace_id, span_id)
    resource: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def from_sdk(span: ReadableSpan) -> SpanRecord:
    context = span.context
    parent = span.parent
    resource = dict(span.resource.attributes) if span.resource else {}
    return SpanRecord(
        name=span.name,
        kind=span.kind.name,
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_id=f"{parent.span_id:016x}" if parent else "",
        service=str(resource.get("service.name", "")),
        start_ns=span.start_time or 0,
        end_ns=span.end_time or 0,
        attributes=dict(span.attributes or {}),
        error=span.status.status_code.name == "ERROR",
        status_message=span.status.description or "",
        events=tuple((event.name, dict(event.attributes or {})) for event in span.events),
        links=tuple((f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") for link in span.links),
        resource=resource,
    )


def _any_value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return tuple(_any_value(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def _attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in pairs}


def from_otlp(request_bytes: bytes) -> list[SpanRecord]:
    """Decode an OTLP ``ExportTraceServiceRequest`` (protobuf bytes)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(request_bytes)
    return from_otlp_request(request)


def from_otlp_request(request: Any) -> list[SpanRecord]:
    """The spans of a decoded ``ExportTraceServiceRequest`` (what the gRPC service receives)."""
    records = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                records.append(SpanRecord(
                    name=span.name,
                    kind=KINDS.get(span.kind, "INTERNAL"),
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_id=span.parent_span_id.hex(),
                    service=str(resource.get("service.name", "")),
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    attributes=_attributes(span.attributes),
                    error=span.status.code == trace_pb2.Status.STATUS_CODE_ERROR,
                    status_message=span.status.message,
                    events=tuple((event.name, _attributes(event.attributes)) for event in span.events),
                    links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                    resource=resource,
                ))
    return records


@dataclasses.dataclass
class Node:
    """A span and its children, as ``build_trees`` links them."""

    span: SpanRecord
    children: list[Node]


def build_trees(spans: Iterable[SpanRecord]) -> list[Node]:
    """Spans as trees: roots are spans whose parent is not among them. Siblings by start time."""
    spans = sorted(spans, key=lambda s: (s.start_ns, s.name))
    nodes = {span.span_id: Node(span, []) for span in spans}
    roots = []
    for span in spans:
        parent = nodes.get(span.parent_id)
        (parent.children if parent else roots).append(nodes[span.span_id])
    return roots
