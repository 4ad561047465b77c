"""A real grpc server and a traced channel to it on loopback, for the gRPC tests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc

from tracing_app.integrations.grpc import TracingClientInterceptor, TracingServerInterceptor


@contextlib.contextmanager
def traced_channel(handler: grpc.GenericRpcHandler, release: threading.Event,
                   *inner: grpc.UnaryUnaryClientInterceptor) -> Iterator[grpc.Channel]:
    """A channel through ``TracingClientInterceptor``, then the ``inner`` interceptors, to a
    ``grpc.server`` with ``TracingServerInterceptor`` serving ``handler`` on a free loopback
    port. On exit ``release`` is set first, so that handlers waiting on it finish; then the
    channel is closed and the server stopped without grace."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[TracingServerInterceptor()])
    server.add_generic_rpc_handlers([handler])
    target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    channel = grpc.intercept_channel(grpc.insecure_channel(target), TracingClientInterceptor(target), *inner)
    try:
        yield channel
    finally:
        release.set()
        channel.close()
        server.stop(grace=None).wait()
