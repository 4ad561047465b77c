"""tracing_app.testing: capture restores what was there, and the tree assertion explains itself."""

import pytest
from opentelemetry.trace import SpanKind

from tracing_app import get_tracer, safety
from tracing_app.devtools.records import SpanRecord
from tracing_app.pipeline import provider
from tracing_app.testing import CapturedSpans, Expect, assert_trace, capture_spans


def record(name, span_id, parent_id="", kind="INTERNAL", trace_id="t1", start=0, **fields):
    return SpanRecord(name=name, kind=kind, trace_id=trace_id, span_id=span_id, parent_id=parent_id,
                      service=fields.pop("service", "web"), start_ns=start, end_ns=start + 10,
                      attributes=fields.pop("attributes", {}), **fields)


ORDER = [
    record("POST api/orders/", "a", kind="SERVER"),
    record("INSERT orders_order", "b", "a", "CLIENT", start=1, attributes={"db.system.name": "sqlite"}),
    record("send reserve", "c", "a", "PRODUCER", start=2),
    record("process reserve", "d", "c", "CONSUMER", start=3, service="worker", error=True),
]


def test_capture_restores_the_previous_provider_and_error_mode_even_when_the_block_raises():
    before, raise_before = provider.get_provider(), safety.RAISE_ERRORS
    with pytest.raises(RuntimeError), capture_spans() as spans:
        assert provider.get_provider() is not before
        with get_tracer().start_as_current_span("inside"):
            pass
        assert safety.RAISE_ERRORS is True
        raise RuntimeError("test body failed")
    assert provider.get_provider() is before and safety.RAISE_ERRORS is raise_before
    assert spans.names() == ["inside"]
    with get_tracer().start_as_current_span("after"):
        pass
    assert spans.names() == ["inside"], "spans after the block do not land in the capture"


def test_nested_captures_restore_in_order():
    with capture_spans() as outer:
        outer_provider = provider.get_provider()
        with capture_spans() as inner:
            with get_tracer().start_as_current_span("inner"):
                pass
        assert provider.get_provider() is outer_provider
        with get_tracer().start_as_current_span("outer"):
            pass
    assert (outer.names(), inner.names()) == (["outer"], ["inner"])


def test_the_fixture_captures_for_one_test(captured_spans):
    assert isinstance(captured_spans, CapturedSpans)
    with get_tracer().start_as_current_span("root"):
        with get_tracer().start_as_current_span("child", kind=SpanKind.CLIENT):
            pass
    assert_trace(captured_spans, Expect("root", children=[Expect("child", kind=SpanKind.CLIENT)]))


def test_a_matching_tree_passes_comparing_only_what_is_expected():
    assert_trace(ORDER, Expect("POST api/orders/", kind="server", children=[
        Expect("INSERT orders_order", attributes={"db.system.name": "sqlite"}),
        Expect("send reserve", children=[Expect("process reserve", service="worker", error=True)]),
    ]))


def test_failure_message_is_a_diff_of_the_two_trees():
    expected = Expect("POST api/orders/", kind="SERVER", children=[
        Expect("INSERT orders_order", kind="CLIENT", attributes={"db.system.name": "postgresql"}),
        Expect("send reserve", children=[Expect("process reserve", error=False)]),
    ])
    with pytest.raises(AssertionError) as failure:
        assert_trace(ORDER, expected)
    assert str(failure.value) == "\n".join([
        "trace tree differs (- expected, + actual):",
        " POST api/orders/ [SERVER]",
        "-  INSERT orders_order [CLIENT] db.system.name='postgresql'",
        "+  INSERT orders_order [CLIENT] db.system.name='sqlite'",
        "   send reserve",
        "-    process reserve ok",
        "+    process reserve ERROR",
    ])


def test_missing_and_extra_spans_show_in_the_diff():
    with pytest.raises(AssertionError) as failure:
        assert_trace(ORDER, Expect("POST api/orders/", children=[
            Expect("INSERT orders_order"), Expect("send reserve"), Expect("cache get"),
        ]))
    message = str(failure.value)
    assert "-  cache get" in message
    assert "+    process reserve [CONSUMER] @worker ERROR" in message, message


def test_orphans_and_foreign_traces_are_reported():
    orphan = record("process reserve", "x", parent_id="lost", kind="CONSUMER", trace_id="t2")
    with pytest.raises(AssertionError) as failure:
        assert_trace([*ORDER[:2], orphan], Expect("POST api/orders/", children=[Expect("INSERT orders_order")]))
    lines = str(failure.value).splitlines()
    assert lines[0] == "expected one trace id, found 2"
    assert lines[1] == "expected one root span, found 2: ['POST api/orders/', 'process reserve']"
    assert "+process reserve [CONSUMER] @web ok" in lines


def test_no_spans_at_all_says_so():
    with pytest.raises(AssertionError, match="no spans were captured; expected a trace rooted at 'GET /'"):
        assert_trace([], Expect("GET /"))
