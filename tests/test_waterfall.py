"""The waterfall's pieces: when a trace counts as finished, and what the filters keep."""

from tracing_app.devtools.records import SpanRecord
from tracing_app.devtools.waterfall import TraceAssembler, TraceFilter, render_waterfall


def record(name, trace_id="t1", span_id="s1", parent_id="", service="web", start=0, end=1_000_000, error=False):
    return SpanRecord(name=name, kind="INTERNAL", trace_id=trace_id, span_id=span_id, parent_id=parent_id,
                      service=service, start_ns=start, end_ns=end, attributes={}, error=error)


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_a_trace_is_finished_after_its_quiet_period_and_late_spans_are_a_continuation():
    clock = Clock()
    assembler = TraceAssembler(quiet=2.0, clock=clock)
    assembler.add([record("a", span_id="a")])
    clock.now += 1.5
    assembler.add([record("b", span_id="b", parent_id="a")])
    clock.now += 1.5
    assert assembler.finished() == [], "b arrived 1.5 s ago: the trace is still open"
    clock.now += 0.5
    [(spans, continued)] = assembler.finished()
    assert [s.name for s in spans] == ["a", "b"] and not continued
    assembler.add([record("late", span_id="c", parent_id="b")])
    [(spans, continued)] = assembler.finished(everything=True)
    assert [s.name for s in spans] == ["late"] and continued
    assert "trace t1 (continued) · 1 span ·" in render_waterfall(spans, continued=True)


def test_filters_look_at_the_whole_trace():
    trace = [record("root", service="web", end=10_000_000), record("task", span_id="s2", parent_id="s1",
                                                                  service="worker", error=True)]
    assert TraceFilter(services=("worker",)).accepts(trace)
    assert not TraceFilter(services=("billing",)).accepts(trace)
    assert TraceFilter(errors_only=True, min_duration_ms=10).accepts(trace)
    assert not TraceFilter(min_duration_ms=10.5).accepts(trace)
    assert not TraceFilter(errors_only=True).accepts(trace[:1])


def test_orphans_start_their_own_tree_and_short_spans_get_one_bar_cell():
    spans = [record("root", end=100_000_000), record("orphan", span_id="s9", parent_id="gone", start=50_000_000,
                                                     end=50_000_001)]
    lines = render_waterfall(spans, bar_width=10).splitlines()
    assert lines[1].split("|")[1] == "█" * 10
    assert lines[2].startswith("  web                  orphan [INTERNAL]") and lines[2].split("|")[1] == "     █    "


def test_columns_line_up_whatever_the_length_of_names():
    spans = [record("root", end=10_000_000),
             record("x" * 60, span_id="s2", parent_id="s1", service="shop-notifications")]
    lines = render_waterfall(spans).splitlines()[1:]
    assert len({line.index("|") for line in lines}) == 1, lines
    assert "shop-notifications " in lines[1]
