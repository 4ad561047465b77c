"""Work tracing_app does for itself (outbox polling, chord bookkeeping) and the
``UNTRACED_COMMANDS`` run untraced: every integration of ours that starts a span on
its own (a query, a cache call, a Celery or kombu publish, a gRPC call) asks
``suppressed()`` first, as OpenTelemetry's instrumentations do."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import context as otel_context

from tracing_app.context.propagators import current_context

_SUPPRESS_KEY = otel_context._SUPPRESS_INSTRUMENTATION_KEY


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Queries inside the block get no span (tracing_app's own bookkeeping: outbox
    polling, chord links). Uses OpenTelemetry's standard suppression key, so other
    instrumentations stay quiet too."""
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def suppressed(context: otel_context.Context | None = None) -> bool:
    """True inside ``untraced()`` or any other OpenTelemetry instrumentation suppression
    (the standard key, set e.g. by an exporter sending spans): start no span then.
    ``context``: the current one, when the caller has it already (None: read it)."""
    # opentelemetry.context.get_value, read from the context directly: this runs for every span.
    return bool((current_context() if context is None else context).get(_SUPPRESS_KEY))
