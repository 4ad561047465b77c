"""New traces started on behalf of another span, linked to it and sampled like it.

A fan-out task or a long-running job can start its own trace instead of growing
the publisher's (``TRACING["CELERY_NEW_TRACE_TASKS"]``). Its root span links to the
publisher with ``INHERIT_SAMPLING`` set, and ``LinkedTraceSampler`` (wrapped around
the configured sampler by ``provider.build_sampler``) gives that root the
publisher's sampling decision: a kept publish never points at a dropped job, and
a dropped one never starts a kept trace. OpenTelemetry's samplers only look at the
parent, never at links, so this small wrapper is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.trace import sampling

from tracing_app.semconv import MESSAGING_LINK_SOURCE

INHERIT_SAMPLING = "tracing_app.link.inherit_sampling"


class LinkedTraceSampler(sampling.Sampler):
    """For a root span with an ``INHERIT_SAMPLING`` link: the linked span's decision. Else: ``delegate``."""

    def __init__(self, delegate: sampling.Sampler) -> None:
        self.delegate = delegate

    def should_sample(self, parent_context: context.Context | None, trace_id: int, name: str,
                      kind: trace.SpanKind | None = None, attributes: Any = None,
                      links: Sequence[trace.Link] | None = None, trace_state: Any = None) -> sampling.SamplingResult:
        if not trace.get_current_span(parent_context).get_span_context().is_valid:
            for link in links or ():
                if link.attributes and link.attributes.get(INHERIT_SAMPLING) and link.context.is_valid:
                    decision = (sampling.Decision.RECORD_AND_SAMPLE if link.context.trace_flags.sampled
                                else sampling.Decision.DROP)
                    return sampling.SamplingResult(decision, attributes if decision.is_sampled() else None)
        return self.delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"LinkedTraceSampler{{{self.delegate.get_description()}}}"


def new_trace_linked_to(span_context: trace.SpanContext, source: str) -> tuple[context.Context, list[trace.Link]]:
    """(an empty parent context, the link) for a span that starts a new trace on behalf of ``span_context``."""
    if not span_context.is_valid:
        return context.Context(), []
    return context.Context(), [trace.Link(span_context, {INHERIT_SAMPLING: True, MESSAGING_LINK_SOURCE: source})]
