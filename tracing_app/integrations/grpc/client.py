"""The client side, for channels made with ``grpc``: every kind of RPC (unary and
streaming requests and responses), one CLIENT span per call covering the whole call."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry.trace import SpanKind

from tracing_app.context.egress import TargetAllowlist, current_allowlist
from tracing_app.context.propagators import current_context, with_span
from tracing_app.context.suppression import suppressed
from tracing_app.integrations.grpc.common import (
    CallSpan,
    code_of,
    context_metadata,
    integration,
    method_text,
    peer_attributes,
    span_attributes,
    span_name,
)
from tracing_app.pipeline.fast_spans import drops_child_of_current
from tracing_app.pipeline.provider import get_tracer
from tracing_app.safety import guarded, swallow


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                                            "compression")),
    grpc.ClientCallDetails,
):
    pass


class ClientSpans:
    """Starting a call's CLIENT span and putting its context in the call's metadata,
    for the sync and the asyncio interceptors alike."""

    def __init__(self, target: str = "") -> None:
        self._target = target
        self._peer = peer_attributes(target)
        self._decided: tuple[TargetAllowlist, bool] | None = None  # PROPAGATE_TO's answer for target

    def _propagates(self) -> bool:
        """Whether ``PROPAGATE_TO`` lets this channel's target receive trace context
        (``egress.should_propagate``), asked again only when the configuration changes."""
        try:
            allowlist = current_allowlist()
            decided = self._decided
            if decided is None or decided[0] is not allowlist:
                decided = self._decided = (allowlist, allowlist.allows(self._target))
        except Exception:  # as egress.should_propagate: when in doubt, send nothing
            return False
        return decided[1]

    def start(self, details: Any) -> tuple[CallSpan | None, Any]:
        """``(the call's span or None, the details to call with)``. Unsampled: no span,
        but the context still travels so the server learns the decision. Should our
        code fail half-way, the call goes on (with what was done) and a started span
        still ends."""
        call_span = None
        try:  # safety.swallow, not guarded(): this runs for every call
            current = current_context()  # read once, passed to each step below
            if suppressed(current):  # untraced(): no span, no context sent
                return None, details
            tracer = get_tracer()
            if drops_child_of_current(tracer, current):
                return None, self._with_metadata(details, context_metadata(self._propagates(), current))
            method = method_text(details.method)
            call_span = CallSpan(tracer.start_span(
                span_name(method), context=current, kind=SpanKind.CLIENT,
                attributes={**span_attributes(method), **self._peer},
            ))
            pairs = context_metadata(self._propagates(), with_span(call_span.span, current))
            details = self._with_metadata(details, pairs)
        except BaseException as exc:
            try:
                if not isinstance(exc, Exception):
                    raise
                swallow("starting a gRPC client span", exc)  # raises it again under RAISE_ERRORS (tests)
            except BaseException:
                if call_span is not None:  # the caller gets the exception, not a call to follow
                    call_span.end_unfinished()
                raise
        return call_span, details

    def _with_metadata(self, details: Any, pairs: list[tuple[str, str]]) -> Any:
        if not pairs:
            return details
        metadata = [*(details.metadata or ()), *pairs]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))


def end_with_call(call_span: CallSpan, call: Any) -> None:
    """A ``grpc.Future`` done callback: the call's status ends the span."""
    try:
        code, details = call.code(), call.details()
    except Exception:
        code, details = None, None  # recorded as UNKNOWN
    call_span.finish(code, details)


def not_started(call_span: CallSpan, exc: BaseException) -> None:
    """End ``call_span`` for a call whose start raised ``exc`` (no call object to follow)."""
    call_span.finish(code_of(exc), f"{type(exc).__name__}: {exc}", exc)


def follow_to_end(call_span: CallSpan, call: Any, on_done: Callable[[Any], None]) -> None:
    """``call.add_done_callback(on_done)``; should that fail, the span ends as UNKNOWN at
    once and our failure is reported (``guarded``), the call going on untraced."""
    try:
        call.add_done_callback(on_done)
    except Exception:
        call_span.end_unfinished()
        with guarded("following a gRPC call to its end"):
            raise


class TracingClientInterceptor(
    grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor,
):
    """Add to a channel with ``grpc.intercept_channel``. ``target`` is the address the
    channel connects to (for ``server.address``/``server.port`` and ``PROPAGATE_TO``).

    The span ends when the RPC terminates: the response arrives, a response stream
    has been read to its end, the call fails, is cancelled or runs out of time."""

    def __init__(self, target: str = "") -> None:
        self._spans = ClientSpans(target)

    def intercept_unary_unary(self, continuation: Callable[..., Any], client_call_details: grpc.ClientCallDetails,
                              request: Any) -> Any:
        return self._intercept(continuation, client_call_details, request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], client_call_details: grpc.ClientCallDetails,
                               request: Any) -> Any:
        return self._intercept(continuation, client_call_details, request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], client_call_details: grpc.ClientCallDetails,
                               request_iterator: Any) -> Any:
        return self._intercept(continuation, client_call_details, request_iterator)

    def intercept_stream_stream(self, continuation: Callable[..., Any], client_call_details: grpc.ClientCallDetails,
                                request_iterator: Any) -> Any:
        return self._intercept(continuation, client_call_details, request_iterator)

    def _intercept(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        if not integration.installed:
            return continuation(details, request)
        call_span, details = self._spans.start(details)
        if call_span is None:
            return continuation(details, request)
        try:
            outcome = continuation(details, request)
        except BaseException as exc:
            not_started(call_span, exc)
            raise
        # Called at once for a call already done (a blocking unary call); else when
        # the RPC terminates, whatever ends it.
        follow_to_end(call_span, outcome, lambda call: end_with_call(call_span, call))
        return outcome
