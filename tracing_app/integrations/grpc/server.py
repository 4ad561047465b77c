"""The server side, for servers made with ``grpc.server``: every kind of RPC, one
SERVER span per call covering the whole call, current while the handler's code runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind

from tracing_app.integrations.grpc.common import (
    METADATA_GETTER,
    CallSpan,
    integration,
    method_text,
    server_status,
    span_attributes,
    span_name,
    split_address,
)
from tracing_app.pipeline.provider import get_tracer
from tracing_app.safety import guarded
from tracing_app.semconv import CLIENT_ADDRESS, CLIENT_PORT


def start_server_span(full_method: str, servicer_context: Any) -> tuple[CallSpan, context.Context] | None:
    """The call's SERVER span (a child of the caller's, from the metadata) and the
    context to run the handler in; None when our code failed (the call runs untraced).
    The span also ends when the RPC terminates before the handler does (cancelled,
    deadline exceeded): ``add_callback``/``add_done_callback``."""
    call_span = None
    try:
        with guarded("starting a gRPC server span"):
            parent = propagate.extract(servicer_context.invocation_metadata(), getter=METADATA_GETTER)
            attributes = span_attributes(full_method)
            host, port = split_address(servicer_context.peer() or "")
            if port is not None:
                attributes[CLIENT_ADDRESS], attributes[CLIENT_PORT] = host, port
            call_span = CallSpan(get_tracer().start_span(
                span_name(full_method), context=parent, kind=SpanKind.SERVER, attributes=attributes,
            ))
            run_in = trace.set_span_in_context(call_span.span, parent)
            on_termination = getattr(servicer_context, "add_callback", None)  # sync server
            if on_termination is not None:
                on_termination(lambda: end_server_span(call_span, servicer_context, None))
            else:  # grpc.aio
                servicer_context.add_done_callback(lambda _: end_server_span(call_span, servicer_context, None))
            return call_span, run_in
    except BaseException:
        if call_span is not None:
            call_span.end_unfinished()
        raise
    if call_span is not None:  # our code failed after starting it: run untraced, end it now
        call_span.end_unfinished()
    return None


def end_server_span(call_span: CallSpan, servicer_context: Any, exc: BaseException | None) -> None:
    if call_span.ended:
        return
    if isinstance(exc, GeneratorExit):
        # The response stream was dropped before its end: the caller went away.
        exc = None
        code, details, crashed = server_status(servicer_context, None)
        if code is grpc.StatusCode.OK:
            code, details = grpc.StatusCode.CANCELLED, "the response stream was closed before its end"
    else:
        code, details, crashed = server_status(servicer_context, exc)
    call_span.finish(code, details, exc if crashed else None)


def traced_unary_response(behavior: Callable[[Any, Any], Any], full_method: str) -> Callable[[Any, Any], Any]:
    def traced(request: Any, servicer_context: grpc.ServicerContext) -> Any:
        started = start_server_span(full_method, servicer_context) if integration.installed else None
        if started is None:
            return behavior(request, servicer_context)
        call_span, run_in = started
        token = context.attach(run_in)
        try:
            response = behavior(request, servicer_context)
        except BaseException as exc:
            end_server_span(call_span, servicer_context, exc)
            raise
        finally:
            context.detach(token)
        end_server_span(call_span, servicer_context, None)
        return response

    return traced


def traced_stream_response(behavior: Callable[[Any, Any], Iterator[Any]],
                           full_method: str) -> Callable[[Any, Any], Any]:
    def traced(request: Any, servicer_context: grpc.ServicerContext) -> Iterator[Any]:
        started = start_server_span(full_method, servicer_context) if integration.installed else None
        if started is None:
            yield from behavior(request, servicer_context)
            return
        call_span, run_in = started
        try:
            responses = iter(behavior(request, servicer_context))
            while True:
                # Current only while the handler's own code runs: between responses
                # this generator is suspended inside gRPC's thread, which sends.
                token = context.attach(run_in)
                try:
                    response = next(responses)
                except StopIteration:
                    break
                finally:
                    context.detach(token)
                yield response
        except BaseException as exc:  # GeneratorExit too: gRPC dropped the stream
            end_server_span(call_span, servicer_context, exc)
            raise
        end_server_span(call_span, servicer_context, None)

    return traced


_HANDLER_FACTORIES = {
    "unary_unary": (grpc.unary_unary_rpc_method_handler, traced_unary_response),
    "unary_stream": (grpc.unary_stream_rpc_method_handler, traced_stream_response),
    "stream_unary": (grpc.stream_unary_rpc_method_handler, traced_unary_response),
    "stream_stream": (grpc.stream_stream_rpc_method_handler, traced_stream_response),
}


def traced_handler(handler: grpc.RpcMethodHandler, full_method: str,
                   wrappers: dict[str, Callable[..., Any]] | None = None) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour (whichever of the four kinds it is) traced."""
    for kind, (factory, wrap) in _HANDLER_FACTORIES.items():
        behavior = getattr(handler, kind, None)
        if behavior is not None:
            wrap = (wrappers or {}).get(kind, wrap)
            return factory(wrap(behavior, full_method), request_deserializer=handler.request_deserializer,
                           response_serializer=handler.response_serializer)
    return handler


class TracingServerInterceptor(grpc.ServerInterceptor):
    """Pass to ``grpc.server(..., interceptors=[TracingServerInterceptor()])``, first.

    The span ends when the handler returns or raises, when a response stream has
    been sent to its end, or when the RPC terminates first (cancelled by the caller,
    deadline exceeded), with the status the caller got."""

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not integration.installed:
            return handler
        return traced_handler(handler, method_text(handler_call_details.method))
