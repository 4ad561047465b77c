"""gRPC: a CLIENT span per call a channel makes, a SERVER span per call a server handles,
for every kind of RPC (unary, and streaming requests and/or responses), sync and
``grpc.aio``.

Usage::

    from tracing_app import TracingClientInterceptor, TracingServerInterceptor

    channel = grpc.intercept_channel(grpc.insecure_channel(target), TracingClientInterceptor(target))
    server = grpc.server(executor, interceptors=[TracingServerInterceptor()])

    # asyncio (tracing_app.aio_client_interceptors, TracingAioServerInterceptor):
    channel = grpc.aio.insecure_channel(target, interceptors=aio_client_interceptors(target))
    server = grpc.aio.server(interceptors=[TracingAioServerInterceptor()])

The trace context travels in the call's metadata (``traceparent``; only to
targets ``TRACING["PROPAGATE_TO"]`` allows, see ``context.egress.should_propagate``),
so the server span is a child of the client span and whatever the handler does (its
database queries) is a child of the server span. A span covers the whole call, a
stream to its end, and every span that starts ends, whatever ends the call: the
answer, an error, a server abort, the caller's cancellation, the deadline, or our
own code failing (``common.CallSpan``). A non-OK status marks the span as an error
on both sides, with ``rpc.grpc.status_code`` and ``error.type``.

Why our own interceptors and not ``opentelemetry-instrumentation-grpc`` (0.66b1):
its client instrumentor ignores the ``tracer_provider`` given to ``instrument()``
(``wrapper_fn`` reads it from the *channel's* kwargs) and patches
``grpc.insecure_channel`` globally, which also catches the OTLP/gRPC exporter's
channel; its server interceptor leaves the span OK with status code 0 when a
handler raises, and never notices a deadline that expired while the handler ran.
These interceptors use gRPC's public interceptor API, are added by the user
where the channel or server is built (like the middleware), and do nothing while
the ``grpc`` integration is off.
"""

from __future__ import annotations

from tracing_app.integrations.grpc.client import TracingClientInterceptor
from tracing_app.integrations.grpc.common import integration, split_address, split_method
from tracing_app.integrations.grpc.server import TracingServerInterceptor

__all__ = ["TracingAioServerInterceptor", "TracingClientInterceptor", "TracingServerInterceptor",
           "aio_client_interceptors", "integration", "split_address", "split_method"]


def __getattr__(name: str) -> object:
    # grpc.aio is imported only by those who use it.
    if name in ("aio_client_interceptors", "TracingAioServerInterceptor"):
        from tracing_app.integrations.grpc import aio

        return getattr(aio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
