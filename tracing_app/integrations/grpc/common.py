"""What the gRPC client and server interceptors, sync and asyncio, share: names and
attributes, the trace context in metadata, and ending a span exactly once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Status, StatusCode

from tracing_app.conf import TracingConfig, get_config
from tracing_app.context.privacy import record_error
from tracing_app.context.propagators import inject_context
from tracing_app.integrations.base import Integration
from tracing_app.safety import guarded
from tracing_app.semconv import (
    ERROR_TYPE,
    RPC_GRPC_STATUS_CODE,
    RPC_METHOD,
    RPC_SERVICE,
    RPC_SYSTEM,
    SERVER_ADDRESS,
    SERVER_PORT,
)

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


def method_text(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method


def span_attributes(full_method: str) -> dict[str, Any]:
    service, method = split_method(full_method)
    return {RPC_SYSTEM: SYSTEM, RPC_SERVICE: service, RPC_METHOD: method}


def span_name(full_method: str) -> str:
    return full_method.lstrip("/") or SYSTEM


def peer_attributes(target: str) -> dict[str, Any]:
    """``server.address``/``server.port`` of the channel's target."""
    host, port = split_address(target) if target else ("", None)
    peer: dict[str, Any] = {}
    if host:
        peer[SERVER_ADDRESS] = host
    if port is not None:
        peer[SERVER_PORT] = port
    return peer


def context_metadata(allowed: bool, span_context: Any) -> list[tuple[str, str]]:
    """The metadata pairs carrying ``span_context`` (else the current context); none when
    ``allowed`` is False (``PROPAGATE_TO`` does not allow the channel's target)."""
    if not allowed:
        return []
    carrier: dict[str, str] = {}
    inject_context(carrier, span_context)
    return [(key.lower(), value) for key, value in carrier.items()]


class MetadataGetter(Getter[Any]):
    """Reads propagation headers from ``context.invocation_metadata()``: (key, value) pairs."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        values = [value for k, value in carrier or () if k == key and isinstance(value, str)]
        return values or None

    def keys(self, carrier: Any) -> list[str]:
        return [k for k, _ in carrier or ()]


METADATA_GETTER = MetadataGetter()


def _details_text(details: Any) -> str:
    if isinstance(details, bytes):
        return details.decode("utf-8", "replace")
    return str(details or "")


class CallSpan:
    """A call's span, ended exactly once whichever path gets there first: the
    response, the end of a stream, an error, a cancellation, the RPC's termination
    callback, or our own code failing half-way."""

    __slots__ = ("_ended", "_lock", "span")

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self._ended = False
        self._lock = threading.Lock()

    @property
    def ended(self) -> bool:
        return self._ended

    def _claim(self) -> bool:
        with self._lock:
            if self._ended:
                return False
            self._ended = True
            return True

    def finish(self, code: grpc.StatusCode | None, details: Any = None, exc: BaseException | None = None) -> None:
        """Record the call's status and end the span (once; later calls do nothing).

        Every non-OK code is an error on both sides (the RPC semantic conventions
        leave client-caused codes such as NOT_FOUND unset on servers; we mark them,
        so a failed call is visible from either end). The status details are text
        the server wrote, often with request data in it: like exception messages,
        they are recorded only with RECORD_EXCEPTION_MESSAGES. The span ends even
        when recording the status fails."""
        if not self._claim():
            return
        span = self.span
        try:
            with guarded("recording a gRPC call's status"):
                code = code or grpc.StatusCode.UNKNOWN
                if exc is not None and isinstance(exc, Exception):
                    record_error(span, exc, error_type=code.name)
                span.set_attribute(RPC_GRPC_STATUS_CODE, code.value[0])
                if code is not grpc.StatusCode.OK:
                    span.set_attribute(ERROR_TYPE, code.name)
                    text = _details_text(details) if get_config().record_exception_messages else ""
                    span.set_status(Status(StatusCode.ERROR, f"{code.name}: {text}" if text else code.name))
        finally:
            span.end()

    def end_unfinished(self) -> None:
        """End the span with UNKNOWN if nothing else has: the last resort when our
        own code failed after the span started."""
        self.finish(grpc.StatusCode.UNKNOWN, "tracing_app could not follow this call to its end")


_CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)


def code_of(exc: BaseException) -> grpc.StatusCode:
    """The status a caller sees for ``exc``: its own for an ``RpcError``, CANCELLED for
    a cancellation, UNKNOWN otherwise."""
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        try:
            code = exc.code()
        except Exception:
            code = None
        if isinstance(code, grpc.StatusCode):
            return code
    if isinstance(exc, _CANCELLED):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


# A call that ends cancelled this close to its deadline was ended by the deadline: the
# caller's deadline passes first, and its cancellation reaches the server a little
# before the server's own copy of the deadline (which started when the request arrived).
DEADLINE_SKEW = 1.0  # seconds


def server_status(servicer_context: Any, exc: BaseException | None) -> tuple[grpc.StatusCode, Any, bool]:
    """The status the server answered with, from ``servicer_context`` and the handler's
    exception: ``(code, details, crashed)``, crashed when the exception made the status.

    ``abort()`` and ``set_code()`` set the code. A handler that raised without one
    made the caller get UNKNOWN. A call whose deadline has passed ended with
    DEADLINE_EXCEEDED (a handler returning after it has its answer dropped): judged by
    the clock, not only by ``is_active()``, since the server may not have processed
    the cancellation yet. Any other call that ended without a status (inactive, or
    its asyncio task cancelled) was cancelled by the caller."""
    code = _call(servicer_context, "code")
    details = _call(servicer_context, "details")
    if isinstance(code, grpc.StatusCode):
        return code, details, False
    asyncio_cancelled = isinstance(exc, _CANCELLED)
    if exc is not None and not asyncio_cancelled:
        return grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}", True
    ended = (asyncio_cancelled or _call(servicer_context, "is_active") is False
             or _call(servicer_context, "cancelled") is True)
    remaining = _call(servicer_context, "time_remaining")
    if remaining is not None and (remaining <= 0 or (ended and remaining <= DEADLINE_SKEW)):
        return grpc.StatusCode.DEADLINE_EXCEEDED, "the caller's deadline passed before the handler ended", False
    if ended:
        return grpc.StatusCode.CANCELLED, "the caller cancelled the call", False
    return grpc.StatusCode.OK, details, False


def _call(servicer_context: Any, name: str) -> Any:
    method = getattr(servicer_context, name, None)
    if method is None:
        return None
    try:
        return method()
    except Exception:
        return None
