"""What a Celery task message carries for tracing besides the W3C headers: our own
namespaced headers (previous attempt, chord links, send time) and a getter that reads
headers from ``task.request``. Celery copies unknown headers onto ``task.request``
(and into retried messages: each publish overwrites them).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter

from tracing_app.context.carriers import header_lines
from tracing_app.context.w3c import format_traceparent, parse_traceparent

PREVIOUS_ATTEMPT_HEADER = "tracing_app_previous_attempt"
CHORD_LINKS_HEADER = "tracing_app_chord_links"
SENT_AT_HEADER = "tracing_app_sent_ns"


class TaskRequestGetter(Getter[Any]):
    """Reads propagation headers from ``task.request``, in any field type the
    ``KombuHeadersCarrier`` reads. A worker copies the
    message's headers onto the request as attributes; ``task.apply(headers=...)``
    and some Celery versions keep them nested under ``request.headers`` instead."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = getattr(carrier, key, None)
        if value is None:
            nested = getattr(carrier, "headers", None)
            value = nested.get(key) if isinstance(nested, dict) else None
        # Any field type an AMQP publisher in another language sends (bytes, ...): carriers.header_lines.
        return None if value is None else header_lines(value)

    def keys(self, carrier: Any) -> list[str]:
        return list(getattr(carrier, "__dict__", {}))


REQUEST_GETTER = TaskRequestGetter()


def traceparent_of(span: trace.Span) -> str:
    """The ``traceparent`` of ``span`` (our header values name earlier spans this way), or ""."""
    span_context = span.get_span_context()
    return format_traceparent(span_context) if span_context.is_valid else ""


def span_context_of(traceparent: Any) -> trace.SpanContext | None:
    """The span a ``traceparent`` in one of our headers names, or None when it names none."""
    parsed = parse_traceparent(traceparent) if isinstance(traceparent, str) else None
    if parsed is None:
        return None
    trace_id, span_id, flags = parsed
    return trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags))
