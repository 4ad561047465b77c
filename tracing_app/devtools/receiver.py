"""Small OTLP trace receivers: ``OTLPReceiver`` for OTLP/HTTP (``POST /v1/traces`` with
protobuf or gzip'd bodies) and ``OTLPGrpcReceiver`` for OTLP/gRPC (needs ``grpcio``, the
``grpc`` extra).

Used by ``manage.py tracing_tail`` and by tests that need real OTLP bytes from
real processes. It decodes with ``opentelemetry-proto`` and keeps every span as
a ``SpanRecord``. ``fault`` makes it misbehave on purpose (an HTTP status, a
delay, a ``partial_success`` rejecting spans) and ``max_body_bytes`` answers 413
to bigger requests, as a collector's body limit does, so that export failure
handling can be tested against the wire.
"""

from __future__ import annotations

import dataclasses
import gzip
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tracing_app.devtools.records import SpanRecord, from_otlp, from_otlp_request

TRACES_PATH = "/v1/traces"


@dataclasses.dataclass
class Fault:
    status: int = 0  # answer with this HTTP status instead of 200 (0: answer normally)
    delay: float = 0.0  # seconds to wait before answering
    retry_after: str = ""  # Retry-After header value sent with the status
    times: int = 0  # misbehave for this many requests, then answer normally (0: until changed)
    rejected_spans: int = 0  # accept the request but reject its last N spans (OTLP partial_success)


def partial_success(rejected: int) -> bytes:
    """An ``ExportTraceServiceResponse`` saying that ``rejected`` spans were dropped."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTracePartialSuccess,
        ExportTraceServiceResponse,
    )

    partial = ExportTracePartialSuccess(rejected_spans=rejected, error_message="rejected by a test fault")
    return ExportTraceServiceResponse(partial_success=partial).SerializeToString()


class OTLPReceiver:
    """Start with ``start()`` (or as a context manager); ``endpoint`` is the base URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 on_spans: Callable[[list[SpanRecord]], None] | None = None, keep: bool = True,
                 max_body_bytes: int = 0, tls: ssl.SSLContext | None = None) -> None:
        # keep=False: spans only go to on_spans (a long-running tracing_tail must not grow).
        # max_body_bytes: answer 413 to a bigger request body (0: no limit).
        # tls: a server-side context: the receiver speaks HTTPS (tests of the exporter's certificate options).
        self.spans: list[SpanRecord] = []
        self.max_body_bytes = max_body_bytes
        self.body_sizes: list[int] = []  # the size of every request body received, in order
        self.too_large = 0  # requests answered 413 for their size
        self._keep = keep
        self.bodies: list[bytes] = []  # every decoded export request, as received (privacy tests grep them)
        # The headers of every POST, names lower-cased, in arrival order (what an exporter sent: auth, encoding).
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []  # the path of every POST, in arrival order
        self.requests = 0  # POSTs received
        self.answered = 0  # POSTs answered (a delayed answer counts once it is sent)
        self.fault = Fault()
        self._on_spans = on_spans
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._scheme = "https" if tls is not None else "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"{self._scheme}://{self._server.server_address[0]}:{self.port}"

    def start(self) -> OTLPReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close kept-alive connections: a stopped receiver refuses, like a dead collector."""
        self._server.shutdown()
        self._server.server_close()
        with self._cond:
            connections, self._connections = set(self._connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear(self) -> None:
        with self._cond:
            self.spans.clear()

    def wait_for(self, predicate: Callable[[list[SpanRecord]], bool], timeout: float = 30.0) -> list[SpanRecord]:
        """Wait until ``predicate(spans)`` is true; return the spans. Raises TimeoutError with what arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.spans)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = sorted(f"{s.service}:{s.name}" for s in self.spans)
                    raise TimeoutError(f"spans did not arrive in {timeout}s; received {len(names)}: {names}")
                self._cond.wait(min(remaining, 0.2))
            return list(self.spans)

    def add(self, records: list[SpanRecord]) -> None:
        """Store spans that arrived another way (``OTLPGrpcReceiver(..., on_spans=receiver.add)``)."""
        self._received(records)

    def _received(self, records: list[SpanRecord], body: bytes = b"") -> None:
        with self._cond:
            if self._keep:
                self.spans.extend(records)
                self.bodies.append(body)
            self._cond.notify_all()
        if self._on_spans is not None:
            self._on_spans(records)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with receiver._cond:
                    receiver._connections.add(self.connection)

            def handle(self) -> None:
                try:
                    super().handle()
                except ConnectionError:
                    pass  # the client gave up (an export timeout) or the receiver was stopped

            def finish(self) -> None:
                with receiver._cond:
                    receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.requests += 1
                    receiver.headers.append({name.lower(): value for name, value in self.headers.items()})
                    receiver.paths.append(self.path)
                    receiver.body_sizes.append(len(body))
                    fault = receiver.fault
                    if fault.times:
                        fault.times -= 1
                        if not fault.times:
                            receiver.fault = Fault()
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.status:
                    self._answer(fault.status, b"", {"Retry-After": fault.retry_after} if fault.retry_after else {})
                    return
                if receiver.max_body_bytes and len(body) > receiver.max_body_bytes:
                    with receiver._cond:
                        receiver.too_large += 1
                    self._answer(413, b"request body too large")
                    return
                if self.path != TRACES_PATH:
                    self._answer(404, b"")
                    return
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                try:
                    if encoding == "gzip":
                        body = gzip.decompress(body)
                    elif encoding == "deflate":
                        body = zlib.decompress(body)
                    records = from_otlp(body)
                except Exception:
                    self._answer(400, b"")
                    return
                rejected = min(fault.rejected_spans, len(records))
                receiver._received(records[:len(records) - rejected], body)
                # An empty ExportTraceServiceResponse is zero bytes of protobuf.
                self._answer(200, partial_success(rejected) if rejected else b"",
                             {"Content-Type": "application/x-protobuf"})

            def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with receiver._cond:
                    receiver.answered += 1

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


class OTLPGrpcReceiver:
    """The OTLP ``TraceService`` over gRPC, insecure, on ``host:port`` (0 picks a port), with
    gRPC's default limit of 4 MiB per received message, as a stock Collector has.

    Raises ``OSError`` when the port cannot be bound, like the HTTP receiver.
    """

    def __init__(self, host: str, port: int, on_spans: Callable[[list[SpanRecord]], None],
                 tls: Any = None) -> None:
        """``tls``: ``grpc.ServerCredentials`` to serve with TLS (the endpoint is then https://)."""
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        receiver = self
        self.requests = 0  # Export calls that reached the service (gRPC refuses oversized ones before)
        # The metadata of every call (names are lower-case in gRPC), in arrival order.
        self.headers: list[dict[str, str]] = []

        class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's naming)
                receiver.requests += 1
                receiver.headers.append({key: value for key, value in context.invocation_metadata()
                                         if isinstance(value, str)})
                on_spans(from_otlp_request(request))
                return trace_service_pb2.ExportTraceServiceResponse()

        # so_reuseport off: otherwise a second receiver binds the same port silently.
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), self._server)
        try:
            self.port = (self._server.add_secure_port(f"{host}:{port}", tls) if tls is not None
                         else self._server.add_insecure_port(f"{host}:{port}"))
        except RuntimeError as exc:  # grpcio raises RuntimeError("Failed to bind ...") on a busy port
            raise OSError(str(exc)) from None
        if not self.port:
            raise OSError(f"cannot bind {host}:{port}")
        self.endpoint = f"{'https' if tls is not None else 'http'}://{host}:{self.port}"

    def start(self) -> OTLPGrpcReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=2).wait()
