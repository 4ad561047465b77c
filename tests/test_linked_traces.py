"""LinkedTraceSampler: a new trace linked to its publisher takes the publisher's sampling decision."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased, TraceIdRatioBased

from tracing_app.pipeline.linked_traces import LinkedTraceSampler, new_trace_linked_to


def span_context(sampled: bool) -> trace.SpanContext:
    return trace.SpanContext(0xABC, 0xDEF, is_remote=True,
                             trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else 0))


@pytest.mark.parametrize("sampled", [True, False])
def test_linked_root_takes_the_publisher_decision_whatever_the_root_sampler(sampled):
    parent, links = new_trace_linked_to(span_context(sampled), "publisher")
    for delegate in (ALWAYS_ON, ALWAYS_OFF, ParentBased(TraceIdRatioBased(0.0))):
        result = LinkedTraceSampler(delegate).should_sample(parent, 0x123, "process x", links=links)
        assert result.decision == (Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP), delegate


def test_sampler_delegates_without_inheriting_link_or_with_a_parent():
    sampler = LinkedTraceSampler(ALWAYS_OFF)
    plain = [trace.Link(span_context(True))]
    assert sampler.should_sample(None, 0x123, "x", links=plain).decision == Decision.DROP
    _, links = new_trace_linked_to(span_context(True), "publisher")
    parent = trace.set_span_in_context(trace.NonRecordingSpan(span_context(False)))
    assert sampler.should_sample(parent, 0xABC, "x", links=links).decision == Decision.DROP
    assert "LinkedTraceSampler{" in sampler.get_description()


