"""gRPC: a CLIENT span per call a channel makes, a SERVER span per call a server handles.

Usage::

    from tracing_app import TracingClientInterceptor, TracingServerInterceptor

    channel = grpc.intercept_channel(grpc.insecure_channel(target), TracingClientInterceptor(target))
    server = grpc.server(executor, interceptors=[TracingServerInterceptor()])

The trace context travels in the call's metadata (``traceparent``; only to
targets ``TRACING["PROPAGATE_TO"]`` allows, see ``propagation.should_propagate``),
so the server span is a child of the client span and whatever the handler does (its
database queries) is a child of the server span. A non-OK status marks the span
as an error on both sides, with ``rpc.grpc.status_code``; a server handler that
outlives the caller's deadline is recorded as ``DEADLINE_EXCEEDED``.

Why our own interceptors and not ``opentelemetry-instrumentation-grpc`` (0.66b1):
its client instrumentor ignores the ``tracer_provider`` given to ``instrument()``
(``wrapper_fn`` reads it from the *channel's* kwargs) and patches
``grpc.insecure_channel`` globally, which also catches the OTLP/gRPC exporter's
channel; its server interceptor leaves the span OK with status code 0 when a
handler raises, and never notices a deadline that expired while the handler ran.
These interceptors use gRPC's public interceptor API, are added by the user
where the channel or server is built (like the middleware), and do nothing while
the ``grpc`` integration is off. Unary-unary calls are traced; streaming calls
pass through untraced.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracing_app.conf import TracingConfig, get_config
from tracing_app.context.egress import should_propagate
from tracing_app.context.privacy import record_error
from tracing_app.context.propagators import inject_context
from tracing_app.integrations.base import Integration
from tracing_app.pipeline.fast_spans import drops_child_of_current
from tracing_app.pipeline.provider import get_tracer
from tracing_app.safety import guarded
from tracing_app.semconv import (
    CLIENT_ADDRESS,
    CLIENT_PORT,
    ERROR_TYPE,
    RPC_GRPC_STATUS_CODE,
    RPC_METHOD,
    RPC_SERVICE,
    RPC_SYSTEM,
    SERVER_ADDRESS,
    SERVER_PORT,
)

logger = logging.getLogger(__name__)

SYSTEM = "grpc"


class GrpcIntegration(Integration):
    """Nothing to patch: the interceptors check ``installed`` on every call."""

    name = "grpc"

    def _install(self, config: TracingConfig) -> None:
        pass

    def _uninstall(self) -> None:
        pass


integration = GrpcIntegration()


def split_method(full_method: str) -> tuple[str, str]:
    """``/shop.pricing.v1.Pricing/GetQuote`` -> ``("shop.pricing.v1.Pricing", "GetQuote")``."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


def split_address(address: str) -> tuple[str, int | None]:
    """``host:port``, ``[::1]:port``, ``dns:///host:port`` or a gRPC peer (``ipv4:1.2.3.4:5``)."""
    for prefix in ("dns:///", "ipv4:", "ipv6:"):
        address = address.removeprefix(prefix)
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, None
    return host.strip("[]"), int(port)


def _span_attributes(full_method: str) -> dict[str, Any]:
    service, method = split_method(full_method)
    return {RPC_SYSTEM: SYSTEM, RPC_SERVICE: service, RPC_METHOD: method}


def _span_name(full_method: str) -> str:
    return full_method.lstrip("/") or SYSTEM


def _details_text(details: Any) -> str:
    if isinstance(details, bytes):
        return details.decode("utf-8", "replace")
    return str(details or "")


def _finish(span: trace.Span, code: grpc.StatusCode, details: Any) -> None:
    """Record the call's status. Every non-OK code is an error on both sides (the
    RPC semantic conventions leave client-caused codes such as NOT_FOUND unset on
    servers; we mark them, so a failed call is visible from either end).

    The status details are text the server wrote, often with request data in it:
    like exception messages, they are recorded only with RECORD_EXCEPTION_MESSAGES."""
    span.set_attribute(RPC_GRPC_STATUS_CODE, code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_attribute(ERROR_TYPE, code.name)
        text = _details_text(details) if get_config().record_exception_messages else ""
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {text}" if text else code.name))
    span.end()


# -- client ----------------------------------------------------------------------


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                                            "compression")),
    grpc.ClientCallDetails,
):
    pass


class TracingClientInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Add to a channel with ``grpc.intercept_channel``. ``target`` is the address the
    channel connects to (for ``server.address``/``server.port``)."""

    def __init__(self, target: str = "") -> None:
        host, port = split_address(target) if target else ("", None)
        self._target = target
        self._peer: dict[str, Any] = {}
        if host:
            self._peer[SERVER_ADDRESS] = host
        if port is not None:
            self._peer[SERVER_PORT] = port

    def intercept_unary_unary(self, continuation: Callable[..., Any], client_call_details: grpc.ClientCallDetails,
                              request: Any) -> Any:
        if not integration.installed:
            return continuation(client_call_details, request)
        span = None
        with guarded("starting a gRPC client span"):
            tracer = get_tracer()
            if drops_child_of_current(tracer):
                # Not sampled: no span, but the server still learns the decision.
                client_call_details = self._propagating(client_call_details, None)
            else:
                method = client_call_details.method
                method = method.decode() if isinstance(method, bytes) else method
                started = tracer.start_span(
                    _span_name(method), kind=SpanKind.CLIENT, attributes={**_span_attributes(method), **self._peer}
                )
                client_call_details = self._propagating(client_call_details, trace.set_span_in_context(started))
                span = started
        if span is None:
            return continuation(client_call_details, request)
        try:
            outcome = continuation(client_call_details, request)
        except Exception as exc:
            with guarded("ending a gRPC client span"):
                code = exc.code() if isinstance(exc, grpc.RpcError) else grpc.StatusCode.UNKNOWN
                record_error(span, exc, error_type=code.name)
                _finish(span, code, f"{type(exc).__name__}: {exc}")
            raise
        # A blocking call is already done (the callback runs at once); a .future()
        # call ends its span when the response or the error arrives.
        outcome.add_done_callback(lambda call: self._end(span, call))
        return outcome

    def _propagating(self, details: grpc.ClientCallDetails, span_context: Any) -> grpc.ClientCallDetails:
        """``details`` with the trace context (``span_context``, else the current one) in its metadata."""
        carrier: dict[str, str] = {}
        if should_propagate(self._target):  # decided per call: PROPAGATE_TO may change
            inject_context(carrier, span_context)
        if not carrier:
            return details
        metadata = list(details.metadata or ())
        metadata.extend((key.lower(), value) for key, value in carrier.items())
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    @staticmethod
    def _end(span: trace.Span, call: Any) -> None:
        with guarded("ending a gRPC client span"):
            _finish(span, call.code(), call.details())


# -- server ----------------------------------------------------------------------


class MetadataGetter(Getter[Any]):
    """Reads propagation headers from ``context.invocation_metadata()``: (key, value) pairs."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        values = [value for k, value in carrier or () if k == key and isinstance(value, str)]
        return values or None

    def keys(self, carrier: Any) -> list[str]:
        return [k for k, _ in carrier or ()]


METADATA_GETTER = MetadataGetter()


class TracingServerInterceptor(grpc.ServerInterceptor):
    """Pass to ``grpc.server(..., interceptors=[TracingServerInterceptor()])``, first."""

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not integration.installed or handler.request_streaming or handler.response_streaming:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._traced(handler.unary_unary, handler_call_details.method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _traced(self, behavior: Callable[[Any, Any], Any], full_method: str) -> Callable[[Any, Any], Any]:
        def traced(request: Any, servicer_context: grpc.ServicerContext) -> Any:
            span = token = None
            with guarded("starting a gRPC server span"):
                parent = propagate.extract(servicer_context.invocation_metadata(), getter=METADATA_GETTER)
                attributes = _span_attributes(full_method)
                host, port = split_address(servicer_context.peer() or "")
                if port is not None:
                    attributes[CLIENT_ADDRESS], attributes[CLIENT_PORT] = host, port
                started = get_tracer().start_span(
                    _span_name(full_method), context=parent, kind=SpanKind.SERVER, attributes=attributes
                )
                token = context.attach(trace.set_span_in_context(started, parent))
                span = started
            if span is None:
                return behavior(request, servicer_context)
            try:
                response = behavior(request, servicer_context)
            except Exception as exc:
                with guarded("ending a gRPC server span"):
                    self._end(span, servicer_context, exc)
                raise
            else:
                with guarded("ending a gRPC server span"):
                    self._end(span, servicer_context, None)
                return response
            finally:
                context.detach(token)

        return traced

    @staticmethod
    def _end(span: trace.Span, servicer_context: grpc.ServicerContext, exc: Exception | None) -> None:
        code = servicer_context.code()  # set by abort() and set_code()
        details = servicer_context.details()
        if code is None and exc is not None:
            # Not an abort: the handler crashed, the caller gets UNKNOWN.
            record_error(span, exc, error_type=grpc.StatusCode.UNKNOWN.name)
            code, details = grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}"
        elif code is None:
            # The answer of a handler that returns after its deadline is dropped: the
            # caller already has DEADLINE_EXCEEDED. Judged by the clock, not only by
            # is_active(): the server may not have processed the cancellation yet.
            remaining = servicer_context.time_remaining()
            if remaining is not None and remaining <= 0:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                details = "the caller's deadline expired before the handler returned"
            elif not servicer_context.is_active():
                code, details = grpc.StatusCode.CANCELLED, "the caller cancelled the call"
        _finish(span, code or grpc.StatusCode.OK, details)
