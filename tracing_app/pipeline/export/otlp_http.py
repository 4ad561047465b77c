"""One OTLP/HTTP export attempt, and what its outcome means.

``HttpSender.send(body, timeout)`` POSTs one encoded request on a kept-alive
connection and returns an ``Outcome``: sent, or failed with the failure's kind
(``dns``, ``refused``, ``timeout``, ``connection``, ``http``), whether the OTLP
specification allows a retry, the server's ``Retry-After`` and a hint for the
user; a 413 is ``too_large`` and a 2xx answer's ``partial_success`` is read.
The retry loop lives in ``processor.py``; ``manage.py tracing_check`` uses
the same sender so that it reports exactly what the exporter would see.

Why not the SDK's ``OTLPSpanExporter``: it retries inside ``export()`` with its
own sleeps (not interruptible by our shutdown bound), does not honour
``Retry-After``, and goes through ``requests`` with a new session's overhead;
we need one attempt at a time, classified, with the timeout we choose.
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import logging
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from tracing_app.pipeline.export.otlp_encoding import Chunk, Encoder
from tracing_app.pipeline.export.outcome import SENT, Outcome, accepted_with_rejections

logger = logging.getLogger(__name__)

# OTLP/HTTP: "retryable" responses; everything else that is not 2xx is final.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
CONTENT_TYPE = "application/x-protobuf"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify_error(error: BaseException, endpoint: str) -> Outcome:
    """A network exception as an Outcome; connection failures are retryable per OTLP."""
    if isinstance(error, socket.gaierror):
        host = urllib.parse.urlsplit(endpoint).hostname
        return Outcome(False, "dns", f"cannot resolve host {host!r}: {error.strerror or error}", retryable=True)
    if isinstance(error, ConnectionRefusedError):
        return Outcome(False, "refused", f"connection refused by {endpoint}", retryable=True)
    if isinstance(error, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return Outcome(False, "timeout", f"no answer from {endpoint} in time", retryable=True)
    return Outcome(False, "connection", f"{type(error).__name__} talking to {endpoint}: {error}", retryable=True)


def partial_success(answer: bytes) -> Outcome:
    """A 2xx answer's ``ExportTraceServiceResponse``: how many spans the collector dropped, and why."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    try:
        response = ExportTraceServiceResponse.FromString(answer)
    except Exception:  # not protobuf (a proxy's text): the request was accepted, that is all we know
        return SENT
    partial = response.partial_success
    return accepted_with_rejections(partial.rejected_spans, partial.error_message)


class HttpSender:
    """POSTs encoded OTLP requests to one URL. Used by one thread at a time."""

    def __init__(self, endpoint: str, headers: dict[str, str] | None = None, *,
                 compression: str = "none", tls: ssl.SSLContext | None = None) -> None:
        """``compression``: ``none`` or ``gzip`` (the body, with ``Content-Encoding: gzip``).
        ``tls``: the context for an https endpoint (``client_tls``); default: the system's CAs."""
        self.endpoint = endpoint
        self._gzip = compression == "gzip"
        self._tls = tls
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"OTLP/HTTP endpoint must be an http:// or https:// URL, got {endpoint!r}")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._headers = {"Content-Type": CONTENT_TYPE, "User-Agent": "tracing_app", **(headers or {})}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=self._tls or ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def send(self, body: bytes, timeout: float) -> Outcome:
        """One POST; ``timeout`` bounds connecting and each read, in seconds."""
        if self._gzip:
            body = gzip.compress(body, compresslevel=6)
        reused = self._connection is not None
        try:
            return self._post(body, timeout)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
            self.close()
            if not reused:
                return classify_error(error, self.endpoint)
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return classify_error(error, self.endpoint)
        # The server closed a kept-alive connection between exports: that is not a failure, reconnect once.
        try:
            return self._post(body, timeout)
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return classify_error(error, self.endpoint)

    def _post(self, body: bytes, timeout: float) -> Outcome:
        if self._connection is None:
            self._connection = self._connect(timeout)
        connection = self._connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        connection.request("POST", self._path, body=body, headers=self._headers)
        response = connection.getresponse()
        answer = response.read()  # read it all, so the connection can be reused
        if response.will_close:
            self.close()
        status = response.status
        if 200 <= status < 300:
            return partial_success(answer) if answer else SENT
        return Outcome(
            False, "http", f"HTTP {status} {response.reason} from {self.endpoint}",
            retryable=status in RETRYABLE_STATUSES, status=status, too_large=status == 413,
            retry_after=parse_retry_after(response.getheader("Retry-After")) if status in RETRYABLE_STATUSES else None,
        )

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def client_tls(certificate: str = "", client_key: str = "", client_certificate: str = "") -> ssl.SSLContext | None:
    """The TLS context for the OTLP exporter's certificate options (PEM file paths): the
    CAs to trust instead of the system's, and the client's key and certificate for mTLS.
    None when none is given. Raises ``OSError``/``ssl.SSLError`` for unreadable files."""
    if not (certificate or client_key or client_certificate):
        return None
    context = ssl.create_default_context(cafile=certificate or None)
    if client_certificate:
        context.load_cert_chain(client_certificate, client_key or None)
    return context


def sender_options(config: Any) -> dict[str, Any]:
    """``HttpSender``'s keyword arguments for a ``TracingConfig``. Certificate files that
    cannot be loaded are logged and left out (the system's CAs, no client certificate):
    exports then fail verification and are counted, the host keeps running."""
    try:
        tls = client_tls(config.otlp_certificate, config.otlp_client_key, config.otlp_client_certificate)
    except (OSError, ssl.SSLError, ValueError) as error:
        logger.warning("tracing_app: the OTLP certificate options cannot be loaded (%s: %s); "
                       "exporting without them", type(error).__name__, error)
        tls = None
    return {"compression": config.otlp_compression, "tls": tls}


class HttpTransport:
    """OTLP/HTTP protobuf: our encoder (``otlp_encoding``) and one ``HttpSender``."""

    def __init__(self, endpoint: str, headers: dict[str, str] | None = None, **options: Any) -> None:
        self.endpoint = endpoint
        self._encoder = Encoder()
        self._sender = HttpSender(endpoint, headers, **options)

    def encode(self, spans: Sequence[ReadableSpan], max_bytes: int,
               pause: Callable[[], None] | None = None) -> tuple[list[Chunk], list[ReadableSpan]]:
        return self._encoder.encode_chunks(spans, max_bytes, pause)

    def send(self, payload: bytes, timeout: float) -> Outcome:
        return self._sender.send(payload, timeout)

    def close(self) -> None:
        self._sender.close()
