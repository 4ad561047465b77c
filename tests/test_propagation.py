"""Bounded W3C propagators and the outgoing-target allowlist."""

import logging

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators import textmap

from tracing_app.context import egress, propagators, w3c
from tracing_app.context.egress import TargetAllowlist, should_propagate
from tracing_app.context.propagators import BaggagePropagator, TraceContextPropagator
from tracing_app.context.w3c import parse_baggage, parse_traceparent, parse_tracestate
from tracing_app.integrations.http_client.instrumentor import withhold_unless_allowed
from tracing_app.integrations.http_client.requests import requests_request_hook
from tracing_app.pipeline.provider import BUILTIN_PROPAGATORS

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


@pytest.mark.parametrize("header", [
    f"01-{TRACE}-{SPAN}-01",  # a future version is read
    f"cc-{TRACE}-{SPAN}-01-what-the-future-adds",
    f" {VALID}\t",
])
def test_valid_traceparent(header):
    assert parse_traceparent(header) == (int(TRACE, 16), int(SPAN, 16), 1)


@pytest.mark.parametrize("header", [
    f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
    f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
    f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
    f"00-{TRACE.upper()}-{SPAN}-01",  # upper-case hex
    f"00-{TRACE[:-1]}g-{SPAN}-01",  # bad hex
    f"00-{TRACE}-{SPAN}-1",
    f"00-{TRACE}-{SPAN}",
    f"{VALID},{VALID}",  # two header lines joined by the server
    VALID + "-" + "x" * 600,
    "", "garbage",
])
def test_invalid_traceparent_is_ignored(header):
    assert parse_traceparent(header) is None
    extracted = TraceContextPropagator().extract({"traceparent": header})
    assert not trace.get_current_span(extracted).get_span_context().is_valid


def test_tracestate_limits():
    assert parse_tracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7").to_header() == \
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert parse_tracestate("a=1,a=2").to_header() == "a=1"  # duplicate key: the first kept (test_w3c_tracestate)
    assert parse_tracestate(",".join(f"k{i}=v" for i in range(33))) is None  # 33 members
    assert parse_tracestate("k=" + "v" * 600) is None  # too long
    assert parse_tracestate("UPPER=v") is None


def test_bad_tracestate_keeps_the_traceparent():
    extracted = TraceContextPropagator().extract({"traceparent": VALID, "tracestate": "bad key=1"})
    span_context = trace.get_current_span(extracted).get_span_context()
    assert f"{span_context.trace_id:032x}" == TRACE
    assert len(span_context.trace_state) == 0


def test_baggage_entries_and_limits():
    assert parse_baggage("tenant.id=acme, enduser.id = 7;prop=1, bad entry=x, x=%F0%9F%98%80") == {
        "tenant.id": "acme", "enduser.id": "7", "x": "😀"}
    many = ",".join(f"k{i}=v" for i in range(500))
    assert len(parse_baggage(many)) == 180  # the first 180 entries
    assert parse_baggage("k=" + "v" * 9000) == {}  # oversized header: nothing
    assert parse_baggage("big=" + "v" * 4100 + ",ok=1") == {"ok": "1"}  # one entry over 4096


def test_many_header_lines_are_ignored():
    lines = ["k=v"] * (w3c.MAX_HEADER_LINES + 1)
    assert baggage.get_all(BaggagePropagator().extract({"baggage": lines}, Context())) == {}
    assert baggage.get_all(BaggagePropagator().extract({"baggage": ["a=1", "b=2"]}, Context())) == \
        {"a": "1", "b": "2"}


def test_round_trip_through_the_global_propagator():
    assert isinstance(propagate.get_global_textmap()._propagators[0], TraceContextPropagator)
    assert BUILTIN_PROPAGATORS["baggage"] is BaggagePropagator
    context = propagate.extract({"traceparent": VALID, "baggage": "tenant.id=ac%20me,enduser.id=7"}, Context())
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    assert carrier["traceparent"] == VALID
    assert parse_baggage(carrier["baggage"]) == {"tenant.id": "ac me", "enduser.id": "7"}


def test_inject_keeps_to_the_limits():
    context = propagators.with_baggage({f"k{i}": "v" * 100 for i in range(300)}, Context())
    carrier: dict[str, str] = {}
    BaggagePropagator().inject(carrier, context)
    assert len(carrier["baggage"]) <= w3c.BAGGAGE_MAX_BYTES
    assert 0 < len(parse_baggage(carrier["baggage"])) <= w3c.BAGGAGE_MAX_ENTRIES


def test_header_values_are_never_logged(caplog):
    secret = "s3cr3t-value"
    carriers = [
        {"traceparent": f"00-{secret}", "tracestate": f"{secret}", "baggage": f"{secret} ={secret}"},
        {"traceparent": VALID, "tracestate": f"k={secret}," * 40, "baggage": f"k={secret}," * 1000},
    ]
    with caplog.at_level(logging.DEBUG):
        for carrier in carriers:
            propagate.extract(carrier, Context())
    assert secret not in caplog.text


@pytest.mark.parametrize(("target", "allowed"), [
    ("pricing:50051", True), ("dns:///pricing:50051", True), ("http://web:8000/api", True),
    ("localhost", True), ("127.0.0.1:8000", True), ("[::1]:50051", True), ("10.1.2.3", True),
    ("pricing.svc.cluster.local", True), ("billing.internal:443", True),
    ("api.stripe.com", False), ("https://api.github.com/repos", False), ("8.8.8.8", False),
    ("evil.com:443", False), ("", False),
])
def test_should_propagate_defaults_to_own_services(target, allowed):
    assert should_propagate(target) is allowed


def test_target_allowlist_patterns():
    allowlist = TargetAllowlist(["partner.example.com", "*.corp.example", "203.0.113.0/24"])
    assert allowlist.allows("partner.example.com:443")
    assert allowlist.allows("https://a.corp.example/x")
    assert allowlist.allows("203.0.113.9")
    assert not allowlist.allows("pricing")  # single-label names only when listed
    assert not allowlist.allows("example.com")
    assert TargetAllowlist(["*"]).allows("anything.example")


def test_should_propagate_follows_the_setting(settings):
    settings.TRACING = {**settings.TRACING, "PROPAGATE_TO": ["api.partner.example"]}
    assert should_propagate("api.partner.example")
    assert not should_propagate("pricing")


def test_inject_only_for_allowed_targets():
    context = propagate.extract({"traceparent": VALID, "baggage": "tenant.id=acme"}, Context())
    internal: dict[str, str] = {}
    external: dict[str, str] = {}
    assert egress.inject(internal, "pricing:50051", context=context)
    assert not egress.inject(external, "api.stripe.com", context=context)
    assert set(internal) == {"traceparent", "baggage"} and external == {}


def _client_span_context(parent: Context) -> tuple[trace.Span, Context]:
    span = trace.NonRecordingSpan(trace.SpanContext(0xABC, 0x123, is_remote=False,
                                                    trace_flags=trace.TraceFlags(0x01)))
    return span, trace.set_span_in_context(span, parent)


class _Vendor(textmap.TextMapPropagator):
    """A propagator that is not ours (like b3): withholding must cover it too."""

    def extract(self, carrier, context=None, getter=textmap.default_getter):
        return context

    def inject(self, carrier, context=None, setter=textmap.default_setter):
        setter.set(carrier, "x-vendor-trace", "1")

    @property
    def fields(self):
        return {"x-vendor-trace"}


@pytest.mark.parametrize("gate", [
    "global",  # tracing_app's global propagator, the default W3C pair (inject_context's one-pass path)
    "vendor",  # a composite holding a propagator that is not ours
])
def test_withheld_span_s_next_injection_writes_nothing_and_later_ones_are_unaffected(gate):
    parent = propagate.extract({"traceparent": VALID, "baggage": "tenant.id=acme"}, Context())
    span, with_span = _client_span_context(parent)
    if gate == "global":
        assert isinstance(propagate.get_global_textmap(), propagators.GatedCompositePropagator)
        assert propagators.global_is_w3c_only()

        def inject(carrier, context):
            propagators.inject_context(carrier, context)
    else:
        composite = propagators.GatedCompositePropagator([propagators.TraceContextPropagator(), _Vendor()])

        def inject(carrier, context):
            composite.inject(carrier, context)
    withheld: dict[str, str] = {}
    other_span: dict[str, str] = {}
    again: dict[str, str] = {}
    propagators.withhold(span)
    inject(other_span, parent)  # another span's context: not covered
    inject(withheld, with_span)
    inject(again, with_span)  # used up
    assert withheld == {}
    assert "traceparent" in other_span and "traceparent" in again


@pytest.mark.parametrize(("url", "sent"), [
    ("http://pricing:8000/quote", True),
    ("https://api.stripe.com/v1", False),
    ("https://[::ffff:8.8.8.8]/v1", False),
])
def test_requests_hook_sends_context_only_to_own_services(url, sent):
    import requests

    request = requests.Request("GET", url).prepare()
    parent = propagate.extract({"traceparent": VALID, "baggage": "tenant.id=acme"}, Context())
    span, with_span = _client_span_context(parent)
    requests_request_hook(span, request)
    propagate.inject(request.headers, context=with_span)  # what the instrumentor does next
    assert ("traceparent" in request.headers) is sent and ("baggage" in request.headers) is sent


def test_a_url_the_hook_cannot_read_gets_no_context():
    class Unreadable:
        def __str__(self):
            raise ValueError("no")

    parent = propagate.extract({"traceparent": VALID}, Context())
    span, with_span = _client_span_context(parent)
    withhold_unless_allowed(span, Unreadable())
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=with_span)
    assert carrier == {}


@pytest.mark.parametrize(("key", "value"), [
    ("PROPAGATE_TO", ["10.0.0.0/33"]),
    ("INCOMING_POLICY", "maybe"),
    ("INCOMING_POLICY_ROUTES", {"/api/": "sometimes"}),
    ("INCOMING_POLICY_ROUTES", "/api/"),
])
def test_bad_propagation_settings_are_reported(key, value):
    from tracing_app.conf import KEYS_BY_NAME, resolve

    config = resolve({key: value}, {})
    assert [p.check_id for p in config.problems] == ["tracing_app.E003"]
    assert getattr(config, key.lower()) == KEYS_BY_NAME[key].parse(KEYS_BY_NAME[key].default)


def _context_with_span_and_baggage():
    from opentelemetry.trace.span import TraceState

    span = trace.NonRecordingSpan(trace.SpanContext(0xABC, 0xDEF, is_remote=False,
                                                    trace_flags=trace.TraceFlags(0x01),
                                                    trace_state=TraceState([("vendor", "x")])))
    return baggage.set_baggage("tenant.id", "acme", trace.set_span_in_context(span))


def test_inject_context_writes_what_the_composite_writes():
    assert propagators.global_is_w3c_only()  # the default propagators
    context = _context_with_span_and_baggage()
    ours, stock = {}, {}
    propagators.inject_context(ours, context)
    propagate.inject(stock, context=context)
    assert ours == stock and set(ours) == {"traceparent", "tracestate", "baggage"}


def test_inject_context_and_extract_follow_other_propagators(monkeypatch):
    from opentelemetry.propagators.composite import CompositePropagator

    only_trace = CompositePropagator([propagators.TraceContextPropagator()])
    monkeypatch.setattr(propagate, "get_global_textmap", lambda: only_trace)
    carrier = {}
    propagators.inject_context(carrier, _context_with_span_and_baggage())
    assert set(carrier) == {"traceparent", "tracestate"}  # no baggage propagator: no baggage
    assert not propagators.nothing_to_extract({}, textmap.default_getter)


def test_nothing_to_extract_only_without_traceparent_and_baggage():
    getter = textmap.default_getter
    assert propagators.nothing_to_extract({}, getter)
    assert propagators.nothing_to_extract({"tracestate": "a=b"}, getter)
    assert not propagators.nothing_to_extract({"traceparent": "00-x"}, getter)
    assert not propagators.nothing_to_extract({"baggage": "a=b"}, getter)


def test_current_span_context():
    assert propagators.current_span_context() == trace.INVALID_SPAN_CONTEXT
    context = _context_with_span_and_baggage()
    assert propagators.current_span_context(context).span_id == 0xDEF


def test_span_context_fields_by_position_are_the_properties():
    # fast_spans, w3c and logs read a SpanContext's tuple by position on every span.
    state = trace.TraceState([("k", "v")])
    span_context = trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(0x03),
                                     trace_state=state)
    assert (span_context[w3c.TRACE_ID], span_context[w3c.SPAN_ID],
            span_context[w3c.IS_REMOTE], span_context[w3c.TRACE_FLAGS],
            span_context[w3c.TRACE_STATE], span_context[w3c.IS_VALID]) == (
        span_context.trace_id, span_context.span_id, span_context.is_remote, span_context.trace_flags,
        span_context.trace_state, span_context.is_valid)
    assert trace.INVALID_SPAN_CONTEXT[w3c.IS_VALID] is False


def test_current_span_context_of_a_value_that_is_not_a_span_is_invalid():
    assert propagators.current_span_context(Context()) is trace.INVALID_SPAN_CONTEXT
    key = next(iter(trace.set_span_in_context(trace.INVALID_SPAN, Context())))
    assert propagators.current_span_context(Context({key: "not a span"})) is trace.INVALID_SPAN_CONTEXT


def test_a_span_that_answers_no_context_counts_as_no_span():
    # NonRecordingSpan(None) is accepted by the API; a span started under it is a root.
    context = trace.set_span_in_context(trace.NonRecordingSpan(None), Context())
    assert propagators.current_span_context(context) is trace.INVALID_SPAN_CONTEXT


def test_the_hot_paths_read_the_same_current_context_as_the_api(monkeypatch):
    import asyncio
    import threading

    from opentelemetry import context as otel_context

    assert propagators.current_context() is otel_context.get_current()
    token = otel_context.attach(otel_context.set_value("k", "request"))
    try:
        assert propagators.current_context() is otel_context.get_current()
        assert propagators.current_context().get("k") == "request"
        seen = []
        same = lambda: seen.append(propagators.current_context() is otel_context.get_current())  # noqa: E731
        thread = threading.Thread(target=same)
        thread.start()
        thread.join()

        async def task():
            inner = otel_context.attach(otel_context.set_value("k", "task"))
            seen.append(propagators.current_context().get("k"))
            otel_context.detach(inner)

        asyncio.run(task())
        assert seen == [True, "task"]
    finally:
        otel_context.detach(token)
    assert propagators.current_context().get("k") is None

    class OtherRuntime:  # a runtime context chosen with OTEL_PYTHON_CONTEXT: the API's function is kept
        _current_context = None

    monkeypatch.setattr(otel_context, "_RUNTIME_CONTEXT", OtherRuntime())
    assert propagators._context_reader() is otel_context.get_current


def test_the_hot_paths_attach_and_detach_as_the_api_does(monkeypatch, caplog):
    from opentelemetry import context as otel_context

    span = trace.NonRecordingSpan(trace.SpanContext(1, 2, is_remote=False))
    outer = otel_context.set_value("k", "outer")
    assert propagators.with_span(span, outer) == trace.set_span_in_context(span, outer)
    token = propagators.attach(propagators.with_span(span, outer))
    try:
        assert otel_context.get_current() == trace.set_span_in_context(span, outer)
        assert trace.get_current_span() is span
        inner = otel_context.attach(otel_context.set_value("k", "inner"))  # the API's and ours nest
        assert propagators.with_span(span) == trace.set_span_in_context(span)
        otel_context.detach(inner)
    finally:
        propagators.detach(token)
    assert otel_context.get_current().get("k") is None and not trace.get_current_span().get_span_context().is_valid

    # A token detached twice (or in another context) is logged where the API logs it, never raised.
    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        propagators.detach(token)
    assert [record.getMessage() for record in caplog.records] == ["Failed to detach context"]

    class OtherRuntime:  # a runtime context chosen with OTEL_PYTHON_CONTEXT: the API's functions are kept
        _current_context = None

    monkeypatch.setattr(otel_context, "_RUNTIME_CONTEXT", OtherRuntime())
    assert propagators._context_writer() == (otel_context.attach, otel_context.detach)
