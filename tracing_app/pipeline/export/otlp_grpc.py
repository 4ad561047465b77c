"""OTLP/gRPC: the bytes our encoder writes, sent with ``grpcio`` as the
``TraceService/Export`` call, one attempt at a time.

Why not the SDK's gRPC ``OTLPSpanExporter``: it re-encodes every span with the
SDK's slower encoder, retries inside ``export()`` with its own sleeps, answers
only success or failure (so a batch over the collector's message limit could not
be split, and ``partial_success`` was not counted), and cannot be bounded by our
shutdown timeout. Here a request is the same ``ExportTraceServiceRequest`` bytes
as over HTTP, split to ``BATCH_MAX_EXPORT_BYTES``, and the gRPC status becomes an
``Outcome`` by the OTLP rules: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
UNAVAILABLE and DATA_LOSS are retried; RESOURCE_EXHAUSTED for a message over the
server's limit (gRPC's default: 4 MiB) splits the request, otherwise (throttling)
is retried; anything else is final.

As over HTTP: ``gzip`` compression when configured, and TLS (``https://``) with the
system's root certificates or the configured CA file, and client certificates for
mutual TLS (``OTEL_EXPORTER_OTLP_CERTIFICATE``, ``..._CLIENT_KEY``, ``..._CLIENT_CERTIFICATE``).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from tracing_app.pipeline.export.otlp_encoding import Chunk, Encoder
from tracing_app.pipeline.export.outcome import Outcome, accepted_with_rejections

logger = logging.getLogger(__name__)

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
DEFAULT_PORT = 4317
RETRYABLE_CODES = frozenset({"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"})
HINTS = {
    "refused": "nothing listens at that address; is the collector running, and is the port 4317 (OTLP/gRPC)?",
    "timeout": "the collector did not answer in time; check the network path or raise OTLP_TIMEOUT (seconds)",
    "UNIMPLEMENTED": "no OTLP trace service at this address; is it an OTLP/gRPC port (4317)?",
    "UNAUTHENTICATED": "the collector wants credentials; set OTLP_HEADERS (e.g. an authorization header)",
    "PERMISSION_DENIED": "the collector refused the credentials in OTLP_HEADERS",
    "RESOURCE_EXHAUSTED": "the request was over the collector's message size limit; it is split in two and "
                          "retried, lower BATCH_MAX_EXPORT_BYTES to avoid this",
}


def grpc_target(endpoint: str) -> tuple[str, bool]:
    """``(host:port, secure)`` from ``http://host:port``, ``https://host:port`` or ``host:port``.

    Raises ValueError for another scheme or no host. A path is ignored, as by the SDK.
    """
    url = urllib.parse.urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    if url.scheme not in ("", "http", "https") or not url.hostname:
        raise ValueError(f"OTLP/gRPC endpoint must be host:port or an http:// or https:// URL, got {endpoint!r}")
    try:
        port = url.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"OTLP/gRPC endpoint {endpoint!r} has an invalid port") from None
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return f"{host}:{port}", url.scheme == "https"


def classify_rpc_error(error: Any, endpoint: str) -> Outcome:
    code = error.code()
    name = code.name if code is not None else "UNKNOWN"
    details = error.details() or ""
    detail = f"gRPC {name} from {endpoint}: {details}" if details else f"gRPC {name} from {endpoint}"
    if name == "UNAVAILABLE" and "refused" in details.lower():
        return Outcome(False, "refused", detail, retryable=True, advice=HINTS["refused"])
    if name == "DEADLINE_EXCEEDED":
        return Outcome(False, "timeout", detail, retryable=True, advice=HINTS["timeout"])
    if name == "RESOURCE_EXHAUSTED":
        if "larger than" in details.lower():
            return Outcome(False, "grpc", detail, too_large=True, advice=HINTS[name])
        return Outcome(False, "grpc", detail, retryable=True, advice="the collector is throttling; it will be retried")
    return Outcome(False, "grpc", detail, retryable=name in RETRYABLE_CODES, advice=HINTS.get(name, ""))


def _credentials(certificate: str, client_key: str, client_certificate: str) -> Any:
    import grpc

    files = []
    for path in (certificate, client_key, client_certificate):
        try:
            files.append(Path(path).read_bytes() if path else None)
        except OSError as error:  # like HTTP's sender_options: logged, the host keeps running
            logger.warning("tracing_app: an OTLP certificate option cannot be read (%s: %s); left out",
                           type(error).__name__, error)
            files.append(None)
    return grpc.ssl_channel_credentials(*files)


class GrpcTransport:
    """One channel per process (built in the process that uses it: a channel does not survive fork)."""

    def __init__(self, endpoint: str, headers: dict[str, str] | None = None, *, insecure: bool = True,
                 compression: str = "none", certificate: str = "", client_key: str = "",
                 client_certificate: str = "") -> None:
        """TLS as OpenTelemetry's exporter specification says: ``https://`` uses it, ``http://``
        does not, an endpoint without a scheme uses it unless ``insecure`` (OTLP_INSECURE).
        ``certificate``, ``client_key``, ``client_certificate``: PEM files (trusted CAs, mTLS);
        one that cannot be read is logged and left out. ``compression``: ``none`` or ``gzip``."""
        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        self.endpoint = endpoint
        target, secure = grpc_target(endpoint)
        if "//" not in endpoint:
            secure = not insecure
        options = {"compression": grpc.Compression.Gzip} if compression == "gzip" else {}
        self._channel = (grpc.secure_channel(target, _credentials(certificate, client_key, client_certificate),
                                             **options)
                         if secure else grpc.insecure_channel(target, **options))
        # No request serializer: the payload already is the serialized request.
        self._export = self._channel.unary_unary(
            EXPORT_METHOD, response_deserializer=ExportTraceServiceResponse.FromString)
        # gRPC metadata keys are lower case.
        self._metadata = tuple((name.lower(), value) for name, value in (headers or {}).items())
        self._rpc_error = grpc.RpcError
        self._encoder = Encoder()

    def encode(self, spans: Sequence[ReadableSpan], max_bytes: int,
               pause: Callable[[], None] | None = None) -> tuple[list[Chunk], list[ReadableSpan]]:
        return self._encoder.encode_chunks(spans, max_bytes, pause)

    def send(self, payload: bytes, timeout: float) -> Outcome:
        try:
            response = self._export(payload, timeout=timeout, metadata=self._metadata)
        except self._rpc_error as error:
            return classify_rpc_error(error, self.endpoint)
        partial = response.partial_success
        return accepted_with_rejections(partial.rejected_spans, partial.error_message)

    def close(self) -> None:
        self._channel.close()
