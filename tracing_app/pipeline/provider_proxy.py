"""A tracer provider for upstream instrumentors that always means "tracing_app's current one".

OpenTelemetry instrumentors (``RequestsInstrumentor().instrument(tracer_provider=...)``)
fetch their tracer once, at install time. tracing_app's provider can change after
that: ``tracing_app.testing.capture_spans()`` swaps it for an in-memory one. Handing
such an instrumentor this proxy instead of the provider itself makes every span it
starts go to whatever provider tracing_app holds at that moment (a no-op tracer
when tracing is off), so it is installed once and still follows the swaps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

from tracing_app.pipeline import provider
from tracing_app.pipeline.fast_spans import fast_tracer


class DelegatingTracer(trace.Tracer):
    def __init__(self, name: str, version: str | None, schema_url: str | None) -> None:
        self._scope = (name, version, schema_url)
        self._cached: tuple[object, trace.Tracer] | None = None

    def _current(self) -> trace.Tracer:
        current = provider.get_provider()
        cached = self._cached
        if cached is not None and cached[0] is current:
            return cached[1]
        # Our span class (fast_spans): the same spans, and length limits applied without a warning per value.
        tracer = fast_tracer(current.get_tracer(*self._scope)) if current is not None else trace.NoOpTracer()
        self._cached = (current, tracer)
        return tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._current().start_span(*args, **kwargs)

    @contextmanager
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:
        with self._current().start_as_current_span(*args, **kwargs) as span:
            yield span


class DelegatingTracerProvider(trace.TracerProvider):
    def get_tracer(self, instrumenting_module_name: str, instrumenting_library_version: str | None = None,
                   schema_url: str | None = None, attributes: Any = None) -> trace.Tracer:
        return DelegatingTracer(instrumenting_module_name, instrumenting_library_version, schema_url)
