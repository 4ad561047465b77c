"""Helpers for tests of projects that use tracing_app (this project's own tests use them too).

``capture_spans()`` swaps tracing_app's provider for one that keeps spans in
memory, and restores the previous provider afterwards. ``assert_trace()``
compares spans with an expected tree and fails with a readable diff.

As a pytest plugin (installed through the ``pytest11`` entry point) this module
also offers the fixture ``captured_spans``.

Example::

    def test_order(client, captured_spans):
        client.post("/api/orders/", ...)
        assert_trace(captured_spans, Expect("POST api/orders/", kind="SERVER", children=[
            Expect("INSERT orders_order", kind="CLIENT", attributes={"db.system.name": "postgresql"}),
        ]))

A mismatch fails with every problem found and a unified diff of the two trees
(``-`` expected, ``+`` actual), showing only the fields the expectation sets::

    trace tree differs (- expected, + actual):
     POST api/orders/ [SERVER]
    -  INSERT orders_order [CLIENT] db.system.name='postgresql'
    +  INSERT orders_order [CLIENT] db.system.name='sqlite'
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from tracing_app import safety
from tracing_app.conf import get_config
from tracing_app.devtools.records import Node, SpanRecord, build_trees, from_sdk
from tracing_app.integrations.django import closing
from tracing_app.pipeline import provider

__all__ = ["CapturedSpans", "Expect", "assert_trace", "build_trees", "capture_spans", "render_tree"]


class CapturedSpans:
    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter = exporter

    def _finished(self) -> tuple:
        closing.end_dropped()  # spans of responses collected unclosed end when read
        return self._exporter.get_finished_spans()

    def records(self) -> list[SpanRecord]:
        return [from_sdk(span) for span in self._finished()]

    def names(self) -> list[str]:
        return [span.name for span in self._finished()]

    def clear(self) -> None:
        closing.end_dropped()
        self._exporter.clear()

    def otlp_bytes(self) -> bytes:
        """The spans as the OTLP exporter would send them (an ``ExportTraceServiceRequest``)."""
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        return encode_spans(self._finished()).SerializeToString()


@contextlib.contextmanager
def capture_spans(sampler: Sampler | None = None, raise_errors: bool = True) -> Iterator[CapturedSpans]:
    """Keep the spans that tracing_app's integrations create in memory for the block.

    The sampler defaults to the configured one. ``raise_errors`` turns tracing_app's
    "swallow and log" guard into "re-raise", so bugs in instrumentation fail the test.
    """
    config = get_config()
    exporter = InMemorySpanExporter()
    test_provider = TracerProvider(
        resource=provider.build_resource(config),
        sampler=sampler or provider.build_sampler(config),
        span_limits=provider.build_span_limits(config),
        shutdown_on_exit=False,
    )
    provider.add_processors(test_provider, config, SimpleSpanProcessor(exporter))
    previous = provider.swap_provider(test_provider)
    previous_raise, safety.RAISE_ERRORS = safety.RAISE_ERRORS, raise_errors
    before = len(safety.unraised)  # an enclosing capture's own
    try:
        yield CapturedSpans(exporter)
        closing.end_dropped()  # responses the block dropped unclosed end here, in its provider
    except BaseException as exc:  # the block's own failure stays the one raised
        for failure in safety.unraised[before:]:
            exc.add_note(f"tracing_app also failed where the host swallowed it: {failure!r}")
        del safety.unraised[before:]
        raise
    finally:
        safety.RAISE_ERRORS = previous_raise
        provider.swap_provider(previous)
        test_provider.shutdown()
    if len(safety.unraised) > before:  # raised where the host swallowed it (safety.swallowed_by_host)
        failure = safety.unraised[before]
        del safety.unraised[before:]
        raise failure


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pytest = None

if pytest is not None:

    @pytest.fixture
    def captured_spans() -> Iterator[CapturedSpans]:
        with capture_spans() as spans:
            yield spans


# -- the expected-tree assertion -------------------------------------------------


@dataclasses.dataclass
class Expect:
    """One expected span. Fields left as None are not compared."""

    name: str
    kind: str | None = None
    service: str | None = None
    error: bool | None = None
    attributes: Mapping[str, Any] | None = None
    children: Sequence[Expect] = ()

    def __post_init__(self) -> None:
        # Accept SpanKind.SERVER as well as "SERVER" / "server".
        if self.kind is not None:
            self.kind = getattr(self.kind, "name", str(self.kind)).upper()


def _describe(span: SpanRecord | None, expect: Expect | None, fields: Expect | None) -> str:
    """One line for a span, showing the fields ``fields`` names (all, when None)."""
    source: Any = span if span is not None else expect
    parts = [source.name]
    if fields is None or fields.kind is not None:
        parts.append(f"[{source.kind}]")
    if fields is None or fields.service is not None:
        parts.append(f"@{source.service}")
    if fields is None or fields.error is not None:
        parts.append("ERROR" if source.error else "ok")
    if fields is not None and fields.attributes:
        values = span.attributes if span is not None else fields.attributes
        parts.extend(f"{k}={values.get(k, '<missing>')!r}" for k in sorted(fields.attributes))
    return " ".join(parts)


def _render_actual(node: Node, expect: Expect | None, depth: int, out: list[str]) -> None:
    out.append("  " * depth + _describe(node.span, None, expect))
    wanted = list(expect.children) if expect else []
    for index, child in enumerate(node.children):
        _render_actual(child, wanted[index] if index < len(wanted) else None, depth + 1, out)


def _render_expected(expect: Expect, depth: int, out: list[str]) -> None:
    out.append("  " * depth + _describe(None, expect, expect))
    for child in expect.children:
        _render_expected(child, depth + 1, out)


def render_tree(node: Node, depth: int = 0) -> str:
    out: list[str] = []
    _render_actual(node, None, depth, out)
    return "\n".join(out)


def assert_trace(spans: Iterable[SpanRecord] | CapturedSpans, expected: Expect) -> None:
    """Assert that ``spans`` form exactly one trace shaped like ``expected``.

    One trace id, one root (no orphan spans), and the same tree of names, with
    kinds, services, error flags and attributes compared where ``expected`` sets them.
    """
    spans = spans.records() if isinstance(spans, CapturedSpans) else list(spans)
    if not spans:
        raise AssertionError(f"no spans were captured; expected a trace rooted at {expected.name!r}")
    problems = []
    trace_ids = {span.trace_id for span in spans}
    if len(trace_ids) != 1:
        problems.append(f"expected one trace id, found {len(trace_ids)}")
    roots = build_trees(spans)
    if len(roots) != 1:
        problems.append(f"expected one root span, found {len(roots)}: {[r.span.name for r in roots]}")
    actual: list[str] = []
    for index, root in enumerate(roots):
        _render_actual(root, expected if index == 0 else None, 0, actual)
    wanted: list[str] = []
    _render_expected(expected, 0, wanted)
    if actual != wanted:
        # One hunk with the whole tree as context: a diff line means little without its ancestors.
        diff = list(difflib.unified_diff(wanted, actual, lineterm="", n=len(wanted) + len(actual)))
        problems.append("trace tree differs (- expected, + actual):\n" + "\n".join(diff[3:]))
    if problems:
        raise AssertionError("\n".join(problems))
