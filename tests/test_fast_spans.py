"""FastTracer's spans record and export exactly what the SDK's would."""

import importlib.metadata
import logging

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    NoOpTracer,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    use_span,
)
from opentelemetry.trace.propagation import set_span_in_context

from tracing_app.pipeline import fast_spans
from tracing_app.pipeline.fast_spans import FastSpan, FastTracer, drops_child_of_current, fast_tracer


class FixedIds(IdGenerator):
    """The same ids for both tracers, so their exports can be compared byte for byte."""

    def __init__(self):
        self.span_id = 0

    def generate_span_id(self):
        self.span_id += 1
        return self.span_id

    def generate_trace_id(self):
        return 0xABC

    def is_trace_id_random(self):
        return True


class OldIds:
    """An id generator as SDK releases before 1.42 have them: no is_trace_id_random()."""

    span_id = 0

    def generate_span_id(self):
        self.span_id += 1
        return self.span_id

    def generate_trace_id(self):
        return 0xABC


# The tests of FastTracer itself; under an SDK release it was not verified with
# (.ci/versions.sh "oldest"), fast_tracer() keeps the SDK's tracer instead, tested below.
ours = pytest.mark.skipif(not fast_spans.sdk_verified(), reason="FastSpan is not used with this opentelemetry-sdk")


ATTRIBUTES = {
    "str": "x", "int": 3, "float": 0.5, "bool": False,
    # not plain: cleaned by the SDK's rules (a list becomes a tuple, None and a dict are dropped)
    "list": ["a", "b"], "none": None, "dict": {"no": 1},
}


def provider_for(limits=None):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "t"}), id_generator=FixedIds(),
                              span_limits=limits or SpanLimits(), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def make_spans(tracer, attributes):
    remote = SpanContext(0xABC, 0x99, is_remote=True, trace_flags=TraceFlags(0x03))
    parent = tracer.start_span("GET /x", kind=SpanKind.SERVER, attributes=attributes,
                               context=set_span_in_context(NonRecordingSpan(remote)),
                               links=[Link(remote, {"link": 1})], start_time=1_000)
    parent.set_attribute("http.response.status_code", 500)
    # after the start: plain values (taken as they are), long ones, an overwrite, and values
    # and keys the SDK cleans or drops
    parent.set_attributes({"url.path": "/orders/42", "http.route": "orders/<int:id>/", "n": 7, "ok": True,
                           "ratio": 0.25})
    parent.set_attributes({"str": "yz", "headers": ("a", "bc"), "none": None, "": "empty key"})
    parent.set_attributes({"int": 4, "fresh": "f"})  # plain, one of them set before: it moves to the end
    parent.set_attribute("long", "a long value")
    parent.set_attribute("listed", ["x", "yz"])
    parent.set_attribute("", "empty key")
    parent.set_attribute("n", 8)
    parent.add_event("an event", {"n": 1}, timestamp=1_500)
    parent.set_status(StatusCode.ERROR, "boom")
    child = tracer.start_span("SELECT t", kind=SpanKind.CLIENT, context=set_span_in_context(parent),
                              attributes={"db.system.name": "postgresql"}, start_time=1_100)
    child.end(end_time=1_200)
    root = tracer.start_span("root", start_time=3_000)
    root.add_link(remote, {"added": "later"})
    root.end(end_time=4_000)
    parent.end(end_time=2_000)


@ours
@pytest.mark.parametrize("limits", [SpanLimits(), SpanLimits(max_span_attributes=3, max_attribute_length=2),
                                    SpanLimits(max_events=0, max_links=0)])
def test_exports_the_same_otlp_as_the_sdk(limits, caplog):
    caplog.set_level(logging.ERROR)  # the SDK warns about the values it drops
    sdk_provider, sdk_exported = provider_for(limits)
    fast_provider, fast_exported = provider_for(limits)
    tracer = fast_tracer(fast_provider.get_tracer("tracing_app"))
    assert isinstance(tracer, FastTracer)
    make_spans(sdk_provider.get_tracer("tracing_app"), ATTRIBUTES)
    make_spans(tracer, ATTRIBUTES)
    fast_spans = fast_exported.get_finished_spans()
    assert all(isinstance(span, FastSpan) for span in fast_spans)
    assert encode_spans(fast_spans) == encode_spans(sdk_exported.get_finished_spans())
    assert dict(fast_spans[1].attributes).get("list", ("a", "b")) == ("a", "b")
    assert "none" not in fast_spans[1].attributes and "dict" not in fast_spans[1].attributes



@ours
def test_spans_without_events_or_links_share_one_empty_list_and_none_is_lost_when_added():
    import threading

    provider, exported = provider_for()
    tracer = fast_tracer(provider.get_tracer("tracing_app"))
    quiet, busy = tracer.start_span("quiet"), tracer.start_span("busy")
    assert quiet._events is busy._events and quiet._links is busy._links  # one shared empty list
    remote = SpanContext(0xABC, 0x99, is_remote=True, trace_flags=TraceFlags(0x01))

    def add(thread):
        for n in range(200):
            busy.add_event(f"{thread}-{n}")
            busy.add_link(remote, {"n": n})

    threads = [threading.Thread(target=add, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    quiet.end()
    busy.end()
    spans = {s.name: s for s in exported.get_finished_spans()}
    assert len(spans["busy"].events) + spans["busy"].dropped_events == 800
    assert len(spans["busy"].links) + spans["busy"].dropped_links == 800
    assert spans["quiet"].events == () and spans["quiet"].links == ()
    assert spans["quiet"].dropped_events == spans["quiet"].dropped_links == 0
    assert tracer.start_span("another")._events is quiet._events  # still empty for the others


@ours
def test_plain_attributes_set_after_the_start_skip_the_sdks_cleaning(monkeypatch):
    from opentelemetry import attributes as sdk_attributes

    cleaned = []
    clean = sdk_attributes._clean_attribute_value
    monkeypatch.setattr(sdk_attributes, "_clean_attribute_value", lambda *args: cleaned.append(args) or clean(*args))
    for limits in (SpanLimits(), SpanLimits(max_span_attributes=2, max_attribute_length=3)):
        provider, exported = provider_for(limits)
        span = fast_tracer(provider.get_tracer("tracing_app")).start_span("op")
        cleaned.clear()  # (the resource's attributes, made with the provider)
        span.set_attributes({"http.response.status_code": 200, "http.route": "orders/<int:id>/", "ok": True})
        span.set_attribute("ratio", 0.5)
        assert cleaned == []
        span.set_attribute("headers", ("a",))  # a sequence: the SDK's cleaning, as before
        assert cleaned
        cleaned.clear()
        span.end()
        recorded = exported.get_finished_spans()[0]
        if limits.max_span_attributes == 2:  # the oldest dropped, the string cut, as the SDK does
            assert dict(recorded.attributes) == {"ratio": 0.5, "headers": ("a",)} and recorded.dropped_attributes == 3
        else:
            assert dict(recorded.attributes) == {"http.response.status_code": 200, "http.route": "orders/<int:id>/",
                                                 "ok": True, "ratio": 0.5, "headers": ("a",)}


@ours
def test_processors_get_the_span_itself_and_it_cannot_change_after_end(caplog):
    ended = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span)

    provider, _ = provider_for()
    provider.add_span_processor(Keep())
    span = fast_tracer(provider.get_tracer("tracing_app")).start_span("op", attributes={"a": 1})
    span.end()
    assert ended == [span] and not span.is_recording()
    span.set_attribute("a", 2)
    span.update_name("other")
    span.end()
    assert span.attributes["a"] == 1 and span.name == "op"
    assert "ended span" in caplog.text


@ours
def test_unsampled_spans_record_nothing():
    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    span = fast_tracer(provider.get_tracer("tracing_app")).start_span("op")
    assert not span.is_recording() and span.get_span_context().is_valid
    assert span.get_span_context().trace_flags == TraceFlags(0x02)  # random trace id, not sampled


@ours
def test_records_exceptions_like_the_sdk():
    provider, exported = provider_for()
    tracer = fast_tracer(provider.get_tracer("tracing_app"))
    with pytest.raises(KeyError), tracer.start_as_current_span("op"):
        raise KeyError("k")
    (span,) = exported.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[0].name == "exception" and span.events[0].attributes["exception.type"] == "KeyError"


def test_other_tracers_are_left_alone():
    no_op = NoOpTracer()
    assert fast_tracer(no_op) is no_op
    not_random = TracerProvider(id_generator=type("Ids", (FixedIds,), {"is_trace_id_random": lambda self: False})(),
                                shutdown_on_exit=False).get_tracer("x")
    assert type(fast_tracer(not_random)) is not FastTracer


@ours
def test_children_of_unsampled_parents_skip_the_sampler_with_the_configured_sampler():
    from tracing_app.conf import resolve
    from tracing_app.pipeline.provider import build_sampler

    calls = []
    provider = TracerProvider(sampler=build_sampler(resolve({"SAMPLE_RATIO": 0.0}, {})), shutdown_on_exit=False)
    tracer = fast_tracer(provider.get_tracer("tracing_app"))
    assert tracer.drops_unsampled_children and tracer.keeps_sampled_children
    tracer.sampler = type("Counting", (), {"should_sample": lambda self, *a, **k: calls.append(a)})()
    for remote in (False, True):
        parent = SpanContext(0xABC, 0xDEF, is_remote=remote, trace_flags=TraceFlags(0x02))
        with use_span(NonRecordingSpan(parent)):
            assert drops_child_of_current(tracer)
            child = tracer.start_span("child").get_span_context()
        assert not child.trace_flags.sampled and child.trace_id == 0xABC and child.span_id != 0xDEF
        assert not child.is_remote
    assert calls == []


@ours
def test_samplers_that_may_keep_children_of_unsampled_parents_are_always_asked():
    for sampler in (ALWAYS_ON, ParentBased(ALWAYS_ON, local_parent_not_sampled=ALWAYS_ON)):
        tracer = fast_tracer(TracerProvider(sampler=sampler, shutdown_on_exit=False).get_tracer("t"))
        assert not tracer.drops_unsampled_children
        with use_span(NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False))):
            assert not drops_child_of_current(tracer)
            assert tracer.start_span("kept").is_recording()


@ours
def test_samplers_that_may_drop_children_of_sampled_parents_are_always_asked():
    sampler = ParentBased(ALWAYS_ON, remote_parent_sampled=ALWAYS_OFF)
    tracer = fast_tracer(TracerProvider(sampler=sampler, shutdown_on_exit=False).get_tracer("t"))
    assert tracer.drops_unsampled_children and not tracer.keeps_sampled_children
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0x01))
    with use_span(NonRecordingSpan(remote)):
        assert not tracer.start_span("dropped").is_recording()


@ours
def test_children_of_sampled_parents_skip_the_sampler_and_keep_the_parents_trace_state():
    from opentelemetry.trace.span import TraceState

    provider, exported = provider_for()
    tracer = fast_tracer(provider.get_tracer("tracing_app"))
    assert tracer.keeps_sampled_children
    tracer.sampler = None  # asked, it would raise
    state = TraceState([("vendor", "x")])
    for flags in (0x01, 0x03):
        parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(flags), trace_state=state)
        with use_span(NonRecordingSpan(parent)):
            tracer.start_span("child", attributes={"a": 1}).end()
    first, second = exported.get_finished_spans()
    assert first.context.trace_flags == 0x01 and second.context.trace_flags == 0x03
    assert first.context.trace_state == state and first.parent.span_id == 0xDEF
    assert dict(first.attributes) == {"a": 1}


@ours
def test_processors_added_later_are_called_in_order_and_only_for_what_they_do():
    calls = []

    class Starts(SpanProcessor):
        def on_start(self, span, parent_context=None):
            calls.append(("start", span.name))

    class Ends(SpanProcessor):
        def _on_ending(self, span):
            calls.append(("ending", span.name))

        def on_end(self, span):
            calls.append(("end", span.name))

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(Starts())
    tracer = fast_tracer(provider.get_tracer("tracing_app"))
    tracer.start_span("first").end()
    provider.add_span_processor(Ends())
    provider.add_span_processor(Starts())
    tracer.start_span("second").end()
    assert calls == [("start", "first"), ("start", "second"), ("start", "second"),
                     ("ending", "second"), ("end", "second")]
    assert tracer.dispatch().on_start == provider._active_span_processor._span_processors[::2]


@ours
def test_roots_ask_the_root_sampler_and_links_still_reach_the_linked_trace_sampler():
    from tracing_app.conf import resolve
    from tracing_app.pipeline.linked_traces import INHERIT_SAMPLING
    from tracing_app.pipeline.provider import build_sampler
    from tracing_app.pipeline.sampling import RuleSampler

    provider = TracerProvider(sampler=build_sampler(resolve({"SAMPLE_RATIO": 0.0}, {})), shutdown_on_exit=False)
    tracer = fast_tracer(provider.get_tracer("tracing_app"))
    assert isinstance(tracer.root_sampler, RuleSampler)
    assert not tracer.start_span("root").is_recording()
    publisher = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0x01))
    linked = tracer.start_span("job", links=[Link(publisher, {INHERIT_SAMPLING: True})])
    assert linked.is_recording() and linked.get_span_context().trace_id != 0xABC



class TraceIds(IdGenerator):
    """Trace ids from a list, one per root, so both tracers decide on the same ids."""

    def __init__(self, trace_ids):
        self.trace_ids = list(trace_ids)
        self.span_id = 0

    def generate_span_id(self):
        self.span_id += 1
        return self.span_id

    def generate_trace_id(self):
        return self.trace_ids.pop(0)

    def is_trace_id_random(self):
        return True


@ours
@pytest.mark.parametrize("settings", [
    {"SAMPLE_RATIO": 0.0}, {"SAMPLE_RATIO": 0.25}, {"SAMPLE_RATIO": 1.0},
    {"SAMPLE_RATIO": 0.5, "HEALTH_CHECK_URLS": [r"^/healthz"]},
    {"SAMPLE_RATIO": 0.5, "SAMPLING_RULES": [{"path": "^/api/", "ratio": 0.0}]},  # rules: the sampler is asked
])
def test_root_decisions_by_ratio_are_the_samplers_own(settings):
    import random

    from tracing_app.conf import resolve
    from tracing_app.pipeline.provider import build_sampler
    from tracing_app.pipeline.sampling import ratio_of_roots
    from tracing_app.semconv import URL_PATH

    sampler = build_sampler(resolve(settings, {}))
    draw = random.Random(7)
    trace_ids = [draw.getrandbits(128) for _ in range(400)] + [1 << 64, (1 << 64) - 1, 1, 2**127]
    paths = ["/api/orders/", "/healthz", "/other", None]

    def decisions(tracer_of, ids, path_of):
        tracer = tracer_of(TracerProvider(sampler=sampler, id_generator=TraceIds(ids),
                                          shutdown_on_exit=False).get_tracer("tracing_app"))
        spans = [tracer.start_span("GET", kind=SpanKind.SERVER, attributes={URL_PATH: path} if path else None)
                 for path in map(path_of, range(len(ids)))]
        return [(s.is_recording(), s.get_span_context().trace_flags, s.get_span_context().trace_state,
                 dict(getattr(s, "attributes", {}) or {})) for s in spans]

    def sdk(tracer):
        return tracer

    by_id = decisions(fast_tracer, trace_ids, lambda n: paths[0])
    assert by_id == decisions(sdk, trace_ids, lambda n: paths[0])
    by_path = decisions(fast_tracer, [1] * len(paths), paths.__getitem__)  # id 1: sampled at any ratio above 0
    assert by_path == decisions(sdk, [1] * len(paths), paths.__getitem__)
    ratio, rules = settings["SAMPLE_RATIO"], "SAMPLING_RULES" in settings
    assert any(recording for recording, *_ in by_id) is (ratio > 0 and not rules)
    assert (fast_tracer(TracerProvider(sampler=sampler).get_tracer("t")).root_ratio is None) is rules
    assert ratio_of_roots(ALWAYS_ON) is None


def test_our_span_class_is_used_exactly_when_the_installed_sdk_is_verified():
    # CI runs this file under the oldest and newest SDK pyproject.toml accepts (.ci/versions.sh):
    # the oldest is under VERIFIED_SDK and gets the SDK's spans, the newest ours.
    provider, exported = provider_for()
    tracer = fast_tracer(provider.get_tracer("tracing_app"))
    assert isinstance(tracer, FastTracer) is fast_spans.sdk_verified()
    make_spans(tracer, ATTRIBUTES)
    assert [s.name for s in exported.get_finished_spans()] == ["SELECT t", "root", "GET /x"]


@pytest.mark.parametrize(("version", "verified"), [
    ("1.42.0", True), ("1.45.2", True), ("1.41.1", False), ("1.30.0", False), ("1.46.0", False), ("2.0.0", False),
    ("1.46.0rc1", False),
])
def test_the_verified_range_includes_its_ends_releases_only(version, verified):
    assert fast_spans.sdk_verified(version) is verified


@pytest.mark.parametrize("version", ["1.46.0", "1.41.1"])
def test_an_sdk_outside_the_verified_range_gets_the_sdks_own_spans_and_one_warning(version, monkeypatch, caplog):
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: version if name == "opentelemetry-sdk" else real_version(name))
    monkeypatch.setattr(fast_spans, "_warned_unverified", False)
    provider, exported = provider_for()
    # As in SDK releases before 1.42: the id generator has no is_trace_id_random().
    old = TracerProvider(id_generator=OldIds(), shutdown_on_exit=False)
    with caplog.at_level(logging.WARNING, logger="tracing_app"):
        tracers = [fast_tracer(provider.get_tracer(name)) for name in ("tracing_app", "tracing_app.celery")]
        tracers.append(fast_tracer(old.get_tracer("tracing_app")))
    assert [type(tracer) for tracer in tracers] == [sdk_trace.Tracer] * 3
    warnings = [r.getMessage() for r in caplog.records if "was verified with" in r.getMessage()]
    assert len(warnings) == 1 and f"opentelemetry-sdk {version} " in warnings[0]
    make_spans(tracers[0], {"str": "x"})  # still traced, by the SDK's spans
    assert [s.name for s in exported.get_finished_spans()] == ["SELECT t", "root", "GET /x"]
    assert not any(isinstance(s, FastSpan) for s in exported.get_finished_spans())


@ours
def test_span_ids_from_the_sdks_random_generator_are_drawn_as_it_draws_them(monkeypatch):
    """FastTracer draws a span id itself only for the SDK's RandomIdGenerator; any other
    generator is asked, and so is this one in the one case (0) a draw is not a valid id."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.trace.span import TraceState

    provider = TracerProvider(shutdown_on_exit=False)
    assert type(provider.id_generator) is RandomIdGenerator
    tracer = fast_tracer(provider.get_tracer("t"))
    assert isinstance(tracer, FastTracer) and tracer.random_span_ids
    remote = SpanContext(0xABC, 0x99, is_remote=True, trace_flags=TraceFlags(0x03),
                         trace_state=TraceState([("k", "v")]))
    for parent in (None, set_span_in_context(NonRecordingSpan(remote))):
        context = tracer.start_span("s", context=parent).get_span_context()
        rebuilt = SpanContext(context.trace_id, context.span_id, is_remote=False, trace_flags=context.trace_flags,
                              trace_state=context.trace_state)
        assert context == rebuilt and type(context) is SpanContext and context.is_valid and 0 < context.span_id < 2**64
    assert tracer.start_span("s", context=set_span_in_context(NonRecordingSpan(remote))).get_span_context(
    ).trace_state == remote.trace_state

    import random

    draw = random.getrandbits
    monkeypatch.setattr(random, "getrandbits", lambda bits: 0 if bits == 64 else draw(bits))  # a test's patch
    monkeypatch.setattr(provider.id_generator, "generate_span_id", lambda: 0x77)
    assert tracer.start_span("s").get_span_context().span_id == 0x77
    assert not fast_tracer(provider.get_tracer("u")).random_span_ids, "a patched generator is asked"
    assert not fast_tracer(provider_for()[0].get_tracer("t")).random_span_ids, "FixedIds is asked for every id"


@ours
def test_an_id_generators_invalid_span_id_makes_an_invalid_span_context_as_in_the_sdk():
    class ZeroSpanIds(FixedIds):
        def generate_span_id(self):
            return 0

    tracer = fast_tracer(TracerProvider(id_generator=ZeroSpanIds(), shutdown_on_exit=False).get_tracer("t"))
    assert isinstance(tracer, FastTracer) and not tracer.random_span_ids
    remote = SpanContext(0xABC, 0x99, is_remote=True, trace_flags=TraceFlags(0x03))
    for parent in (None, set_span_in_context(NonRecordingSpan(remote))):
        context = tracer.start_span("s", context=parent).get_span_context()
        assert context == SpanContext(0xABC, 0, is_remote=False, trace_flags=context.trace_flags,
                                      trace_state=context.trace_state)
        assert context.span_id == 0 and not context.is_valid  # as SpanContext.__new__ decides
