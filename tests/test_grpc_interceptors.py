"""The gRPC interceptors against a real grpc server on loopback, spans captured in memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from django.conf import settings
from django.test import override_settings
from opentelemetry import trace

from tests.grpc_loopback import traced_channel
from tracing_app import safety
from tracing_app.context.suppression import untraced
from tracing_app.integrations.grpc import (
    integration,
    split_address,
    split_method,
)
from tracing_app.pipeline.provider import get_tracer
from tracing_app.testing import Expect, assert_trace

SAY = "/test.v1.Echo/Say"
NAME = "test.v1.Echo/Say"


class Echo:
    """Handlers keyed by the request bytes, so one server covers every case."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.metadata: list[tuple[str, str]] = []

    def say(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.metadata = list(context.invocation_metadata())
        self.context = context
        self.started.set()
        with get_tracer().start_as_current_span("work"):
            if request == b"missing":
                context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
            if request == b"crash":
                raise ValueError("boom")
            if request == b"slow":
                self.release.wait(30)
        return b"echo:" + request


@pytest.fixture
def echo() -> Iterator[tuple[Echo, grpc.Channel]]:
    servicer = Echo()
    handler = grpc.unary_unary_rpc_method_handler(servicer.say)
    with traced_channel(grpc.method_handlers_generic_handler("test.v1.Echo", {"Say": handler}),
                        servicer.release) as channel:
        yield servicer, channel


def call(channel: grpc.Channel, body: bytes, timeout: float = 10.0) -> bytes:
    return channel.unary_unary(SAY)(body, timeout=timeout)


def wait_for_spans(captured, count: int) -> list:
    """Server spans end on the server's thread, after the client has its answer."""
    deadline = time.monotonic() + 10
    while len(captured.records()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return captured.records()


def by_kind(spans, kind):
    return next(s for s in spans if s.kind == kind)


def test_server_span_is_child_of_client_span_and_handler_work_of_server_span(echo, captured_spans):
    servicer, channel = echo
    with get_tracer().start_as_current_span("caller"):
        assert call(channel, b"hi") == b"echo:hi"
    spans = wait_for_spans(captured_spans, 4)
    assert_trace(spans, Expect("caller", children=[
        Expect(NAME, kind="CLIENT", error=False, children=[
            Expect(NAME, kind="SERVER", error=False, children=[Expect("work", kind="INTERNAL")]),
        ]),
    ]))
    client, server = by_kind(spans, "CLIENT"), by_kind(spans, "SERVER")
    for span in (client, server):
        assert span.attributes["rpc.system"] == "grpc"
        assert span.attributes["rpc.service"] == "test.v1.Echo"
        assert span.attributes["rpc.method"] == "Say"
        assert span.attributes["rpc.grpc.status_code"] == 0
    assert client.attributes["server.address"] == "127.0.0.1"
    assert server.attributes["client.address"] == "127.0.0.1"
    sent = dict(servicer.metadata)
    assert sent["traceparent"].split("-")[1:3] == [client.trace_id, client.span_id]


def test_not_found_is_an_error_on_both_sides(echo, captured_spans):
    _, channel = echo
    with pytest.raises(grpc.RpcError) as raised:
        call(channel, b"missing")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    spans = wait_for_spans(captured_spans, 3)
    assert_trace(spans, Expect(NAME, kind="CLIENT", error=True, children=[
        Expect(NAME, kind="SERVER", error=True, children=[Expect("work")]),
    ]))
    for span in (by_kind(spans, "CLIENT"), by_kind(spans, "SERVER")):
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
        assert span.attributes["error.type"] == "NOT_FOUND"
        assert span.status_message == "NOT_FOUND", "the server's details are not recorded by default"


def test_status_details_are_recorded_with_record_exception_messages(echo, captured_spans):
    _, channel = echo
    with override_settings(TRACING={**settings.TRACING, "RECORD_EXCEPTION_MESSAGES": True}):
        with pytest.raises(grpc.RpcError):
            call(channel, b"missing")
        spans = wait_for_spans(captured_spans, 3)
    for span in (by_kind(spans, "CLIENT"), by_kind(spans, "SERVER")):
        assert span.status_message == "NOT_FOUND: no such thing"


def test_handler_crash_is_unknown_with_the_exception_on_the_server_span(echo, captured_spans):
    _, channel = echo
    with pytest.raises(grpc.RpcError) as raised:
        call(channel, b"crash")
    assert raised.value.code() == grpc.StatusCode.UNKNOWN
    spans = wait_for_spans(captured_spans, 3)
    client, server = by_kind(spans, "CLIENT"), by_kind(spans, "SERVER")
    assert client.error and server.error
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNKNOWN.value[0]
    assert server.status_message == "UNKNOWN"
    [(name, event)] = server.events
    assert name == "exception" and event["exception.type"] == "ValueError"
    assert "exception.message" not in event, "no exception message by default"


def test_deadline_exceeded_is_an_error_on_both_sides(echo, captured_spans):
    servicer, channel = echo
    with pytest.raises(grpc.RpcError) as raised:
        call(channel, b"slow", timeout=0.3)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    servicer.release.set()  # the handler finishes after its caller gave up
    spans = wait_for_spans(captured_spans, 3)
    assert_trace(spans, Expect(NAME, kind="CLIENT", error=True, children=[
        Expect(NAME, kind="SERVER", error=True, children=[Expect("work")]),
    ]))
    for span in (by_kind(spans, "CLIENT"), by_kind(spans, "SERVER")):
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


def test_cancelled_call_is_cancelled_on_both_sides(echo, captured_spans):
    servicer, channel = echo
    future = channel.unary_unary(SAY).future(b"slow", timeout=30)
    assert servicer.started.wait(10)
    future.cancel()
    deadline = time.monotonic() + 10
    while servicer.context.is_active() and time.monotonic() < deadline:  # the server has seen the cancel
        time.sleep(0.01)
    servicer.release.set()
    spans = wait_for_spans(captured_spans, 3)
    for span in (by_kind(spans, "CLIENT"), by_kind(spans, "SERVER")):
        assert span.error and span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]


def test_future_call_ends_its_span_when_the_answer_arrives(echo, captured_spans):
    servicer, channel = echo
    future = channel.unary_unary(SAY).future(b"slow", timeout=10)
    assert not [s for s in captured_spans.records() if s.kind == "CLIENT"]
    servicer.release.set()
    assert future.result() == b"echo:slow"
    spans = wait_for_spans(captured_spans, 3)
    assert by_kind(spans, "CLIENT").attributes["rpc.grpc.status_code"] == 0


def test_uninstalled_integration_traces_nothing_and_sends_no_context(echo, captured_spans):
    servicer, channel = echo
    integration.uninstall()
    try:
        assert call(channel, b"quiet") == b"echo:quiet"
    finally:
        integration.install(None)
    assert [s.name for s in captured_spans.records()] == ["work"]
    assert "traceparent" not in dict(servicer.metadata)


def test_no_context_to_a_target_outside_propagate_to(echo, captured_spans):
    """The call is still traced on both sides, but the server starts a trace of its own.
    The channel's answer follows the configuration: asked again once it changes."""
    servicer, channel = echo
    assert call(channel, b"inside") == b"echo:inside"
    assert "traceparent" in dict(servicer.metadata)
    with override_settings(TRACING={**settings.TRACING, "PROPAGATE_TO": ["pricing.internal"]}):
        captured_spans.clear()
        assert call(channel, b"outside") == b"echo:outside"
        spans = wait_for_spans(captured_spans, 3)
        assert "traceparent" not in dict(servicer.metadata) and "baggage" not in dict(servicer.metadata)
    client, server = by_kind(spans, "CLIENT"), by_kind(spans, "SERVER")
    assert server.trace_id != client.trace_id and server.parent_id == ""
    assert call(channel, b"inside") == b"echo:inside"
    assert "traceparent" in dict(servicer.metadata)


@pytest.mark.parametrize(("address", "expected"), [
    ("127.0.0.1:50051", ("127.0.0.1", 50051)),
    ("ipv4:10.0.0.2:4321", ("10.0.0.2", 4321)),
    ("ipv6:[::1]:4321", ("::1", 4321)),
    ("dns:///pricing:50051", ("pricing", 50051)),
    ("unix:/tmp/socket", ("unix:/tmp/socket", None)),
])
def test_split_address(address, expected):
    assert split_address(address) == expected


def test_split_method():
    assert split_method("/shop.pricing.v1.Pricing/GetQuote") == ("shop.pricing.v1.Pricing", "GetQuote")


def test_under_an_unsampled_parent_no_client_span_but_the_server_learns_the_decision(echo, captured_spans):
    servicer, channel = echo
    unsampled = trace.NonRecordingSpan(trace.SpanContext(0xABC, 0xDEF, is_remote=False))
    with trace.use_span(unsampled):
        assert call(channel, b"unsampled") == b"echo:unsampled"
    assert dict(servicer.metadata)["traceparent"] == f"00-{0xABC:032x}-{0xDEF:016x}-00"
    time.sleep(0.2)  # a server span, if one were wrongly kept, ends just after the answer
    assert captured_spans.records() == []


class _RefusesDoneCallbacks(grpc.UnaryUnaryClientInterceptor):
    """Between our interceptor and the channel: the call it hands back refuses done callbacks."""

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return _NoDoneCallbacks(continuation(client_call_details, request))


class _NoDoneCallbacks:
    def __init__(self, call) -> None:
        self._call = call

    def add_done_callback(self, callback) -> None:
        raise RuntimeError("no done callbacks here")

    def __getattr__(self, name):
        return getattr(self._call, name)


def test_a_call_we_cannot_follow_still_answers_and_its_span_ends_unknown(captured_spans, monkeypatch):
    monkeypatch.setattr(safety, "RAISE_ERRORS", False)
    servicer = Echo()
    handler = grpc.method_handlers_generic_handler("test.v1.Echo", {"Say": grpc.unary_unary_rpc_method_handler(
        servicer.say)})
    with traced_channel(handler, servicer.release, _RefusesDoneCallbacks()) as channel:
        # A future: a blocking call hands our interceptor gRPC's own finished outcome instead.
        assert channel.unary_unary(SAY).future(b"hi", timeout=10).result() == b"echo:hi"
        spans = wait_for_spans(captured_spans, 3)
    assert_trace(spans, Expect(NAME, kind="CLIENT", error=True, children=[
        Expect(NAME, kind="SERVER", error=False, children=[Expect("work")]),
    ]))
    client = by_kind(spans, "CLIENT")
    assert client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNKNOWN.value[0]
    assert client.status_message == "UNKNOWN"


def test_a_call_inside_untraced_makes_no_client_span_and_sends_no_context(echo, captured_spans):
    """untraced() (UNTRACED_COMMANDS, our own bookkeeping) silences gRPC calls as it does queries;
    the server, in a context of its own, still traces what it serves."""
    servicer, channel = echo
    with get_tracer().start_as_current_span("housekeeping"), untraced():
        assert call(channel, b"hi") == b"echo:hi"
    spans = wait_for_spans(captured_spans, 3)
    assert sorted(s.kind for s in spans) == ["INTERNAL", "INTERNAL", "SERVER"]
    assert "traceparent" not in dict(servicer.metadata)
    assert not by_kind(spans, "SERVER").parent_id
