"""Building the pricing gRPC server: traced by tracing_app's interceptor."""

from __future__ import annotations

from concurrent import futures

import grpc

from tracing_app import TracingServerInterceptor

from .api import pricing_pb2_grpc
from .service import PricingServicer


def build_server(listen: str, max_workers: int = 8) -> tuple[grpc.Server, int]:
    """A started-to-be server bound to ``listen`` (``host:port``; port 0 picks one). Returns (server, port)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="pricing"),
        interceptors=[TracingServerInterceptor()],
    )
    pricing_pb2_grpc.add_PricingServicer_to_server(PricingServicer(), server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"pricing: cannot listen on {listen}")
    return server, port
