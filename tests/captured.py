"""Helpers over ``tracing_app.testing``'s ``captured_spans`` shared by the test modules."""

from __future__ import annotations

from tracing_app.devtools.records import SpanRecord
from tracing_app.testing import CapturedSpans


def only_span(captured_spans: CapturedSpans) -> SpanRecord:
    """The one span captured; fails naming them all when there are none or more."""
    spans = captured_spans.records()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]
