"""gRPC streaming RPCs and grpc.aio, against real servers on loopback: one span per call
on each side covering the whole stream, and every span ends on every path:
the stream's end, the caller's cancellation, the deadline, a server abort, a handler
crash, and our own code failing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import grpc.aio
import pytest
from opentelemetry import trace

from tests.grpc_loopback import traced_channel
from tracing_app import TracingAioServerInterceptor, aio_client_interceptors, safety
from tracing_app.pipeline.provider import get_tracer
from tracing_app.testing import Expect, assert_trace, capture_spans

SERVICE = "test.v1.Stream"
COUNT, SUM, ECHO, SAY = (f"/{SERVICE}/{m}" for m in ("Count", "Sum", "Echo", "Say"))
OK, CANCELLED, DEADLINE, NOT_FOUND, UNKNOWN = (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED,
                                               grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.NOT_FOUND,
                                               grpc.StatusCode.UNKNOWN)


def name(method: str) -> str:
    return method.lstrip("/")


def wait_for(captured, predicate, what: str) -> list:
    """Server spans end on the server's side, after the client has its answer."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        spans = captured.records()
        if predicate(spans):
            return spans
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}; spans: {[(s.name, s.kind) for s in captured.records()]}")


def both_ended(spans) -> bool:
    return {"CLIENT", "SERVER"} <= {s.kind for s in spans}


def by_kind(spans, kind):
    [span] = [s for s in spans if s.kind == kind]
    return span


def assert_status(spans, code: grpc.StatusCode) -> None:
    for span in (by_kind(spans, "CLIENT"), by_kind(spans, "SERVER")):
        assert span.attributes["rpc.grpc.status_code"] == code.value[0], (span.kind, span.attributes)
        assert span.error is (code is not OK)
        assert span.end_ns >= span.start_ns > 0
        if code is not OK:
            assert span.attributes["error.type"] == code.name


# -- the sync server and channel ------------------------------------------------------


class Streams:
    """Handlers of every kind. A request or the first message decides what happens:
    b"3" streams three answers; b"abort", b"crash" and b"slow" answer once, then
    abort with NOT_FOUND, raise, or wait for ``release``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.streaming = threading.Event()
        self.metadata: list[tuple[str, str]] = []

    def _answers(self, first: bytes, context) -> Iterator[bytes]:
        self.metadata = list(context.invocation_metadata())
        count = int(first) if first.isdigit() else 1
        for index in range(count):
            with get_tracer().start_as_current_span("work"):
                yield b"%d" % index
        self.streaming.set()
        if first == b"abort":
            context.abort(NOT_FOUND, "gone")
        if first == b"crash":
            raise ValueError("boom")
        if first == b"slow":
            self.release.wait(30)

    def count(self, request: bytes, context) -> Iterator[bytes]:
        yield from self._answers(request, context)

    def sum(self, requests: Iterator[bytes], context) -> bytes:
        received = list(requests)
        return b"+".join(list(self._answers(received[0], context)) + received)

    def echo(self, requests: Iterator[bytes], context) -> Iterator[bytes]:
        first = next(requests)
        yield from self._answers(first, context)
        yield from requests

    def say(self, request: bytes, context) -> bytes:
        return b"".join(self._answers(request, context))


def handlers(servicer) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(SERVICE, {
        "Count": grpc.unary_stream_rpc_method_handler(servicer.count),
        "Sum": grpc.stream_unary_rpc_method_handler(servicer.sum),
        "Echo": grpc.stream_stream_rpc_method_handler(servicer.echo),
        "Say": grpc.unary_unary_rpc_method_handler(servicer.say),
    })


@pytest.fixture
def sync_stack() -> Iterator[tuple[Streams, grpc.Channel]]:
    servicer = Streams()
    with traced_channel(handlers(servicer), servicer.release) as channel:
        yield servicer, channel


def test_unary_stream_is_one_span_a_side_over_the_whole_stream(sync_stack, captured_spans):
    servicer, channel = sync_stack
    with get_tracer().start_as_current_span("caller"):
        assert list(channel.unary_stream(COUNT)(b"3", timeout=20)) == [b"0", b"1", b"2"]
    spans = wait_for(captured_spans, lambda s: len(s) == 6, "6 spans")
    assert_trace(spans, Expect("caller", children=[Expect(name(COUNT), kind="CLIENT", error=False, children=[
        Expect(name(COUNT), kind="SERVER", error=False, children=[Expect("work")] * 3),
    ])]))
    assert_status(spans, OK)
    server = by_kind(spans, "SERVER")
    assert all(s.end_ns <= server.end_ns for s in spans if s.name == "work"), "the server span covers the stream"
    assert dict(servicer.metadata)["traceparent"].split("-")[2] == by_kind(spans, "CLIENT").span_id


def test_stream_unary_and_stream_stream_are_one_span_a_side(sync_stack, captured_spans):
    _, channel = sync_stack
    with get_tracer().start_as_current_span("caller"):
        assert channel.stream_unary(SUM)(iter([b"2", b"x"]), timeout=20) == b"0+1+2+x"
        assert list(channel.stream_stream(ECHO)(iter([b"2", b"y"]), timeout=20)) == [b"0", b"1", b"y"]
    spans = wait_for(captured_spans, lambda s: len(s) == 9, "9 spans")
    assert_trace(spans, Expect("caller", children=[
        Expect(name(SUM), kind="CLIENT", error=False, children=[
            Expect(name(SUM), kind="SERVER", error=False, children=[Expect("work")] * 2)]),
        Expect(name(ECHO), kind="CLIENT", error=False, children=[
            Expect(name(ECHO), kind="SERVER", error=False, children=[Expect("work")] * 2)]),
    ]))


def test_caller_cancelling_mid_stream_ends_both_spans_cancelled(sync_stack, captured_spans):
    servicer, channel = sync_stack
    responses = channel.unary_stream(COUNT)(b"slow", timeout=30)
    assert next(responses) == b"0"
    assert servicer.streaming.wait(20)
    responses.cancel()
    # The handler is still blocked: its span ends when the call does, not when the handler returns.
    spans = wait_for(captured_spans, both_ended, "both spans after the cancellation")
    assert_status(spans, CANCELLED)
    servicer.release.set()


@pytest.mark.parametrize("method", [COUNT, ECHO])
def test_deadline_passing_mid_stream_ends_both_spans_deadline_exceeded(sync_stack, captured_spans, method):
    servicer, channel = sync_stack
    if method == COUNT:
        responses = channel.unary_stream(COUNT)(b"slow", timeout=1)
    else:
        responses = channel.stream_stream(ECHO)(iter([b"slow"]), timeout=1)
    with pytest.raises(grpc.RpcError) as raised:
        list(responses)
    assert raised.value.code() == DEADLINE
    spans = wait_for(captured_spans, both_ended, "both spans after the deadline")
    assert_status(spans, DEADLINE)


@pytest.mark.parametrize(("first", "code"), [(b"abort", NOT_FOUND), (b"crash", UNKNOWN)])
@pytest.mark.parametrize("method", [COUNT, SUM, ECHO])
def test_server_abort_or_crash_mid_stream_ends_both_spans_with_its_status(sync_stack, captured_spans, method,
                                                                          first, code):
    _, channel = sync_stack
    with pytest.raises(grpc.RpcError) as raised:
        if method == COUNT:
            list(channel.unary_stream(COUNT)(first, timeout=20))
        elif method == SUM:
            channel.stream_unary(SUM)(iter([first]), timeout=20)
        else:
            list(channel.stream_stream(ECHO)(iter([first]), timeout=20))
    assert raised.value.code() == code
    spans = wait_for(captured_spans, both_ended, "both spans after the failure")
    assert_status(spans, code)
    server = by_kind(spans, "SERVER")
    assert [event for event, _ in server.events] == (["exception"] if code is UNKNOWN else [])


def test_a_failure_in_our_own_start_hook_leaves_the_call_traced_and_its_span_ended(sync_stack, monkeypatch):
    servicer, channel = sync_stack

    def broken(*args):
        raise RuntimeError("propagation broke")

    monkeypatch.setattr("tracing_app.integrations.grpc.client.context_metadata", broken)
    with capture_spans(raise_errors=False) as captured:  # as in production: our failure is logged, not raised
        assert list(channel.unary_stream(COUNT)(b"2", timeout=20)) == [b"0", b"1"]
        assert channel.unary_unary(SAY)(b"1", timeout=20) == b"0"
        spans = wait_for(captured, lambda s: len([x for x in s if x.kind == "SERVER"]) == 2, "two server spans")
    clients = [s for s in spans if s.kind == "CLIENT"]
    assert [s.attributes["rpc.grpc.status_code"] for s in clients] == [0, 0]
    assert "traceparent" not in dict(servicer.metadata)



def test_under_raise_errors_a_failing_start_hook_still_ends_the_started_span(sync_stack, monkeypatch):
    """In tests our own failure is raised to the caller (RAISE_ERRORS): the span it started ends first."""
    _, channel = sync_stack

    def broken(*args):
        raise RuntimeError("propagation broke")

    monkeypatch.setattr("tracing_app.integrations.grpc.client.context_metadata", broken)
    with capture_spans(raise_errors=True) as captured:
        with pytest.raises(RuntimeError, match="propagation broke"):
            channel.unary_unary(SAY)(b"1", timeout=20)
        spans = wait_for(captured, lambda s: any(x.kind == "CLIENT" for x in s), "the client span")
    assert [s.kind for s in spans] == ["CLIENT"]


def test_a_failure_in_our_own_end_hook_still_ends_both_spans(sync_stack, monkeypatch):
    _, channel = sync_stack

    def broken():
        raise RuntimeError("config broke")

    monkeypatch.setattr("tracing_app.integrations.grpc.common.get_config", broken)
    with capture_spans(raise_errors=False) as captured:
        with pytest.raises(grpc.RpcError):
            list(channel.unary_stream(COUNT)(b"abort", timeout=20))  # the error path reads the config
        spans = wait_for(captured, both_ended, "both spans")
    for span in (by_kind(spans, "CLIENT"), by_kind(spans, "SERVER")):
        assert span.end_ns >= span.start_ns > 0


def test_under_an_unsampled_parent_a_stream_makes_no_span_but_carries_the_decision(sync_stack, captured_spans):
    servicer, channel = sync_stack
    with trace.use_span(trace.NonRecordingSpan(trace.SpanContext(0xABC, 0xDEF, is_remote=False))):
        assert list(channel.unary_stream(COUNT)(b"2", timeout=20)) == [b"0", b"1"]
    assert dict(servicer.metadata)["traceparent"].endswith("-00")
    assert [s.kind for s in captured_spans.records() if s.kind in ("CLIENT", "SERVER")] == []


# -- grpc.aio ----------------------------------------------------------------------


class AioStreams:
    """``Streams`` as asyncio handlers; also a ``context.write`` style stream (Write)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.streaming = asyncio.Event()
        self.metadata: list[tuple[str, str]] = []

    async def _answers(self, first: bytes, context) -> AsyncIterator[bytes]:
        self.metadata = list(context.invocation_metadata())
        count = int(first) if first.isdigit() else 1
        for index in range(count):
            with get_tracer().start_as_current_span("work"):
                await asyncio.sleep(0)
                yield b"%d" % index
        self.streaming.set()
        if first == b"abort":
            await context.abort(NOT_FOUND, "gone")
        if first == b"crash":
            raise ValueError("boom")
        if first == b"slow":
            await asyncio.wait_for(self.release.wait(), 30)

    async def count(self, request: bytes, context) -> AsyncIterator[bytes]:
        async for answer in self._answers(request, context):
            yield answer

    async def write(self, request: bytes, context) -> None:
        async for answer in self._answers(request, context):
            await context.write(answer)

    async def sum(self, requests, context) -> bytes:
        received = [r async for r in requests]
        return b"+".join([a async for a in self._answers(received[0], context)] + received)

    async def echo(self, requests, context) -> AsyncIterator[bytes]:
        iterator = requests.__aiter__()
        first = await iterator.__anext__()
        async for answer in self._answers(first, context):
            yield answer
        async for rest in iterator:
            yield rest

    async def say(self, request: bytes, context) -> bytes:
        return b"".join([a async for a in self._answers(request, context)])


async def aio_stack(servicer: AioStreams, *inner: grpc.aio.ClientInterceptor) -> tuple[grpc.aio.Server,
                                                                                       grpc.aio.Channel]:
    """A grpc.aio server traced by ``TracingAioServerInterceptor`` on a free loopback port and a
    channel to it through our client interceptors, then the ``inner`` ones."""
    server = grpc.aio.server(interceptors=[TracingAioServerInterceptor()])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {
        "Count": grpc.unary_stream_rpc_method_handler(servicer.count),
        "Write": grpc.unary_stream_rpc_method_handler(servicer.write),
        "Sum": grpc.stream_unary_rpc_method_handler(servicer.sum),
        "Echo": grpc.stream_stream_rpc_method_handler(servicer.echo),
        "Say": grpc.unary_unary_rpc_method_handler(servicer.say),
    })])
    target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    return server, grpc.aio.insecure_channel(target, interceptors=[*aio_client_interceptors(target), *inner])


def run_aio(scenario, *inner: grpc.aio.ClientInterceptor) -> AioStreams:
    """Run ``scenario(servicer, channel)`` against a fresh grpc.aio server and channel."""

    async def main() -> AioStreams:
        servicer = AioStreams()
        server, channel = await aio_stack(servicer, *inner)
        try:
            await scenario(servicer, channel)
        finally:
            servicer.release.set()
            await channel.close()
            await server.stop(None)
        return servicer

    return asyncio.run(main())


async def _requests(*messages: bytes) -> AsyncIterator[bytes]:
    for message in messages:
        yield message


def test_aio_every_kind_of_call_is_one_span_a_side(captured_spans):
    async def scenario(servicer, channel):
        with get_tracer().start_as_current_span("caller"):
            assert await channel.unary_unary(SAY)(b"1", timeout=20) == b"0"
            assert [r async for r in channel.unary_stream(f"/{SERVICE}/Count")(b"2", timeout=20)] == [b"0", b"1"]
            assert [r async for r in channel.unary_stream(f"/{SERVICE}/Write")(b"2", timeout=20)] == [b"0", b"1"]
            assert await channel.stream_unary(SUM)(_requests(b"1", b"x"), timeout=20) == b"0+1+x"
            call = channel.stream_stream(ECHO)(_requests(b"1", b"y"), timeout=20)
            assert [r async for r in call] == [b"0", b"y"]

    run_aio(scenario)
    spans = wait_for(captured_spans, lambda s: len(s) == 1 + 5 * 2 + 7, "18 spans")

    def call(method, works):
        return Expect(method, kind="CLIENT", error=False, children=[
            Expect(method, kind="SERVER", error=False, children=[Expect("work")] * works)])

    assert_trace(spans, Expect("caller", children=[
        call(name(SAY), 1), call(f"{SERVICE}/Count", 2), call(f"{SERVICE}/Write", 2), call(name(SUM), 1),
        call(name(ECHO), 1),
    ]))
    for span in spans:
        if span.kind in ("CLIENT", "SERVER"):
            assert span.attributes["rpc.grpc.status_code"] == 0


def test_aio_caller_cancelling_mid_stream_ends_both_spans_cancelled(captured_spans):
    async def scenario(servicer, channel):
        call = channel.unary_stream(COUNT)(b"slow", timeout=30)
        assert await call.read() == b"0"
        await asyncio.wait_for(servicer.streaming.wait(), 20)
        call.cancel()
        await asyncio.to_thread(wait_for, captured_spans, both_ended, "both spans after the cancellation")

    run_aio(scenario)
    assert_status(captured_spans.records(), CANCELLED)


async def _call_to_the_end(channel, method: str, first: bytes, answered: asyncio.Event) -> None:
    """Make one call of ``method``'s kind and read all of its answer; ``answered`` is set
    once the first message of a streamed answer has arrived."""
    if method == SAY:
        await channel.unary_unary(SAY)(first, timeout=30)
    elif method == SUM:
        await channel.stream_unary(SUM)(_requests(first), timeout=30)
    else:
        call = (channel.unary_stream(COUNT)(first, timeout=30) if method == COUNT
                else channel.stream_stream(ECHO)(_requests(first), timeout=30))
        async for _ in call:
            answered.set()


@pytest.mark.parametrize("method", [SAY, COUNT, SUM, ECHO])
def test_aio_caller_task_cancelled_mid_call_ends_both_spans_cancelled(captured_spans, method):
    """The asyncio way to give up on a call (a timeout around it, a cancelled request
    handler): the task awaiting it is cancelled, for every kind of call.

    A streamed answer is cancelled once its first message is in: grpc.aio (1.85, with or
    without interceptors) leaves the RPC running when the task is cancelled in the step
    between the call's start finishing and the task resuming (``_read`` awaits its
    ``_preparation`` task outside its cancellation handling), so no RPC ends, and no span
    can. A caller that is reading is past that step."""
    async def scenario(servicer, channel):
        answered = asyncio.Event()
        task = asyncio.ensure_future(_call_to_the_end(channel, method, b"slow", answered))
        await asyncio.wait_for(servicer.streaming.wait(), 20)
        if method in (COUNT, ECHO):
            await asyncio.wait_for(answered.wait(), 20)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(wait_for, captured_spans, both_ended, "both spans after the cancellation")

    run_aio(scenario)
    assert_status(captured_spans.records(), CANCELLED)


@pytest.mark.parametrize("method", [COUNT, ECHO])
def test_aio_stream_left_unread_then_its_channel_closed_ends_both_spans_cancelled(captured_spans, method):
    """A caller that stops reading (``break``) leaves the RPC running (grpc.aio cancels
    nothing then, with or without interceptors); closing the channel cancels it, and
    both spans end with that."""
    async def scenario(servicer, channel):
        if method == COUNT:
            call = channel.unary_stream(COUNT)(b"slow", timeout=30)
        else:
            call = channel.stream_stream(ECHO)(_requests(b"slow"), timeout=30)
        async for _ in call:
            break
        await asyncio.wait_for(servicer.streaming.wait(), 20)
        await channel.close()
        await asyncio.to_thread(wait_for, captured_spans, both_ended, "both spans after the channel closed")

    run_aio(scenario)
    assert_status(captured_spans.records(), CANCELLED)


@pytest.mark.parametrize("method", [SAY, COUNT])
def test_aio_deadline_ends_both_spans_deadline_exceeded(captured_spans, method):
    async def scenario(servicer, channel):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            if method == SAY:
                await channel.unary_unary(SAY)(b"slow", timeout=1)
            else:
                [r async for r in channel.unary_stream(COUNT)(b"slow", timeout=1)]
        assert raised.value.code() == DEADLINE
        await asyncio.to_thread(wait_for, captured_spans, both_ended, "both spans after the deadline")

    run_aio(scenario)
    assert_status(captured_spans.records(), DEADLINE)


@pytest.mark.parametrize(("first", "code"), [(b"abort", NOT_FOUND), (b"crash", UNKNOWN)])
@pytest.mark.parametrize("method", [SAY, COUNT, ECHO])
def test_aio_server_abort_or_crash_ends_both_spans_with_its_status(captured_spans, method, first, code):
    async def scenario(servicer, channel):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            if method == SAY:
                await channel.unary_unary(SAY)(first, timeout=20)
            elif method == COUNT:
                [r async for r in channel.unary_stream(COUNT)(first, timeout=20)]
            else:
                [r async for r in channel.stream_stream(ECHO)(_requests(first), timeout=20)]
        assert raised.value.code() == code
        await asyncio.to_thread(wait_for, captured_spans, both_ended, "both spans after the failure")

    run_aio(scenario)
    assert_status(captured_spans.records(), code)


def test_aio_context_goes_in_the_metadata_and_a_failing_start_hook_keeps_the_call_traced(monkeypatch):
    def broken(*args):
        raise RuntimeError("propagation broke")

    async def propagated(servicer, channel):
        assert await channel.unary_unary(SAY)(b"1", timeout=20) == b"0"
        assert "traceparent" in dict(servicer.metadata)
        monkeypatch.setattr("tracing_app.integrations.grpc.client.context_metadata", broken)
        assert await channel.unary_unary(SAY)(b"1", timeout=20) == b"0"
        assert "traceparent" not in dict(servicer.metadata)

    with capture_spans(raise_errors=False) as captured:
        run_aio(propagated)
        spans = wait_for(captured, lambda s: len([x for x in s if x.kind == "SERVER"]) == 2, "two server spans")
    assert [s.attributes["rpc.grpc.status_code"] for s in spans if s.kind == "CLIENT"] == [0, 0]


def test_a_failure_in_our_own_server_hook_after_the_span_started_ends_it_and_the_call_still_runs(sync_stack,
                                                                                                 monkeypatch):
    _, channel = sync_stack

    class BrokenTrace:
        @staticmethod
        def set_span_in_context(*args):
            raise RuntimeError("context broke")

    monkeypatch.setattr("tracing_app.integrations.grpc.server.trace", BrokenTrace)
    with capture_spans(raise_errors=False) as captured:
        assert list(channel.unary_stream(COUNT)(b"2", timeout=20)) == [b"0", b"1"]
        spans = wait_for(captured, both_ended, "both spans")
    server = by_kind(spans, "SERVER")
    assert server.end_ns >= server.start_ns > 0 and server.error, "ended, marked as not followed to its end"
    assert by_kind(spans, "CLIENT").attributes["rpc.grpc.status_code"] == 0


class _RefusesDoneCallbacksAio(grpc.aio.UnaryUnaryClientInterceptor):
    """Between our interceptor and the channel: the call it hands back refuses done callbacks."""

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        call = await continuation(client_call_details, request)

        def refuse(callback) -> None:
            raise RuntimeError("no done callbacks here")

        call.add_done_callback = refuse
        return call


def test_aio_call_we_cannot_follow_still_answers_and_its_span_ends_unknown(captured_spans, monkeypatch):
    monkeypatch.setattr(safety, "RAISE_ERRORS", False)

    async def scenario(servicer, channel):
        assert await channel.unary_unary(SAY)(b"1", timeout=20) == b"0"

    run_aio(scenario, _RefusesDoneCallbacksAio())
    spans = wait_for(captured_spans, lambda s: len(s) == 3, "3 spans")
    assert_trace(spans, Expect(name(SAY), kind="CLIENT", error=True, children=[
        Expect(name(SAY), kind="SERVER", error=False, children=[Expect("work")]),
    ]))
    [client] = [s for s in spans if s.kind == "CLIENT"]
    assert client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNKNOWN.value[0]
    assert client.status_message == "UNKNOWN"
