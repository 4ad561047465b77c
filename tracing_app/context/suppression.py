"""Work tracing_app does for itself (outbox polling, chord bookkeeping) runs untraced."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import context as otel_context


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
