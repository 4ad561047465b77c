"""``grpc.aio``: the same spans as the sync interceptors, for asyncio channels and servers.

Usage::

    from tracing_app import TracingAioServerInterceptor, aio_client_interceptors

    channel = grpc.aio.insecure_channel(target, interceptors=aio_client_interceptors(target))
    server = grpc.aio.server(interceptors=[TracingAioServerInterceptor()])
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
from opentelemetry import context

from tracing_app.integrations.grpc.client import ClientSpans, follow_to_end, not_started
from tracing_app.integrations.grpc.common import CallSpan, integration, method_text
from tracing_app.integrations.grpc.server import (
    end_server_span,
    start_server_span,
    traced_handler,
    traced_stream_response,
    traced_unary_response,
)

# -- client ----------------------------------------------------------------------


class _AioClientSpans(ClientSpans):
    def _with_metadata(self, details: Any, pairs: list[tuple[str, str]]) -> Any:
        if not pairs:
            return details
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *pairs)
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                          details.wait_for_ready)


def _result_now(make: Callable[[], Any]) -> Any:
    """The value of a ``grpc.aio`` call's ``code()``/``details()`` coroutine, run to its
    end without an event loop step: a finished call has its status, so the coroutine
    completes at its first step. Raises ``LookupError`` when it would have to wait."""
    coroutine = make()
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise LookupError("the call has no status yet")


def end_with_aio_call(call_span: CallSpan, call: Any) -> None:
    """A ``grpc.aio`` done callback (it may not await): the call's status ends the span."""
    try:
        if call.cancelled():
            call_span.finish(grpc.StatusCode.CANCELLED, "the call was cancelled")
            return
        code, details = _result_now(call.code), _result_now(call.details)
    except Exception:
        code, details = None, None  # recorded as UNKNOWN
    call_span.finish(code, details)


class _AioClientInterceptor:
    """One kind of call: ``grpc.aio`` registers an interceptor for the first kind it is
    an instance of only (``elif`` in ``InterceptedChannel``), so each kind needs its own."""

    def __init__(self, spans: _AioClientSpans) -> None:
        self._spans = spans

    async def _intercept(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        if not integration.installed:
            return await continuation(details, request)
        call_span, details = self._spans.start(details)
        if call_span is None:
            return await continuation(details, request)
        try:
            call = await continuation(details, request)
        except BaseException as exc:  # CancelledError too: the caller gave up before the call began
            not_started(call_span, exc)
            raise
        # The callback is handed gRPC's internal call object for streams: use ours.
        follow_to_end(call_span, call, lambda _: end_with_aio_call(call_span, call))
        return call


class _UnaryUnary(_AioClientInterceptor, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Callable[..., Any], client_call_details: Any,
                                    request: Any) -> Any:
        return await self._intercept(continuation, client_call_details, request)


class _UnaryStream(_AioClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Callable[..., Any], client_call_details: Any,
                                     request: Any) -> Any:
        return await self._intercept(continuation, client_call_details, request)


class _StreamUnary(_AioClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Callable[..., Any], client_call_details: Any,
                                     request_iterator: Any) -> Any:
        return await self._intercept(continuation, client_call_details, request_iterator)


class _StreamStream(_AioClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Callable[..., Any], client_call_details: Any,
                                      request_iterator: Any) -> Any:
        return await self._intercept(continuation, client_call_details, request_iterator)


def aio_client_interceptors(target: str = "") -> list[grpc.aio.ClientInterceptor]:
    """The interceptors for ``grpc.aio.insecure_channel(target, interceptors=...)``, one
    per kind of call (``grpc.aio`` uses an interceptor for one kind only). ``target`` is
    the address the channel connects to. Each call's span ends when the RPC
    terminates, as with ``TracingClientInterceptor``; the call object the caller gets
    is gRPC's own (``read()``, ``write()``, ``cancel()`` behave as without us)."""
    spans = _AioClientSpans(target)
    return [_UnaryUnary(spans), _UnaryStream(spans), _StreamUnary(spans), _StreamStream(spans)]


# -- server ----------------------------------------------------------------------


def _aio_whole_call(behavior: Callable[..., Any], full_method: str) -> Callable[..., Any]:
    """A coroutine handler: a unary response, or a stream written with ``context.write``."""

    async def traced(request: Any, servicer_context: Any) -> Any:
        started = start_server_span(full_method, servicer_context) if integration.installed else None
        if started is None:
            return await behavior(request, servicer_context)
        call_span, run_in = started
        token = context.attach(run_in)
        try:
            response = await behavior(request, servicer_context)
        except BaseException as exc:  # CancelledError when the caller cancels or its deadline passes
            end_server_span(call_span, servicer_context, exc)
            raise
        finally:
            context.detach(token)
        end_server_span(call_span, servicer_context, None)
        return response

    return traced


def _aio_stream_response(behavior: Callable[..., Any], full_method: str) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behavior):
        return _aio_whole_call(behavior, full_method)

    async def traced(request: Any, servicer_context: Any) -> AsyncIterator[Any]:
        started = start_server_span(full_method, servicer_context) if integration.installed else None
        if started is None:
            async for response in behavior(request, servicer_context):
                yield response
            return
        call_span, run_in = started
        try:
            responses = behavior(request, servicer_context).__aiter__()
            while True:
                token = context.attach(run_in)  # current while the handler's own code runs
                try:
                    response = await responses.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    context.detach(token)
                yield response
        except BaseException as exc:
            end_server_span(call_span, servicer_context, exc)
            raise
        end_server_span(call_span, servicer_context, None)

    return traced


def _wrapper(async_wrap: Callable[..., Any], sync_wrap: Callable[..., Any]) -> Callable[..., Any]:
    """A grpc.aio server runs a plain function handler in its thread pool: keep it plain."""

    def wrap(behavior: Callable[..., Any], full_method: str) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior):
            return async_wrap(behavior, full_method)
        return sync_wrap(behavior, full_method)

    return wrap


_AIO_WRAPPERS = {
    "unary_unary": _wrapper(_aio_whole_call, traced_unary_response),
    "unary_stream": _wrapper(_aio_stream_response, traced_stream_response),
    "stream_unary": _wrapper(_aio_whole_call, traced_unary_response),
    "stream_stream": _wrapper(_aio_stream_response, traced_stream_response),
}


class TracingAioServerInterceptor(grpc.aio.ServerInterceptor):
    """Pass to ``grpc.aio.server(interceptors=[TracingAioServerInterceptor()])``, first.
    The span ends as with ``TracingServerInterceptor``; a handler cancelled because the
    caller cancelled or its deadline passed ends it with that status."""

    async def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or not integration.installed:
            return handler
        return traced_handler(handler, method_text(handler_call_details.method), _AIO_WRAPPERS)
