"""Our W3C propagators (``tracecontext``, ``baggage``) and the one-pass inject and
extract shortcuts our hot paths use.

Why our own propagators instead of the SDK's ``TraceContextTextMapPropagator`` and
``W3CBaggagePropagator``: the stock baggage extractor validates each entry with several
regexes and calls ``set_baggage`` once per entry, each call copying the whole baggage
dict (quadratic in the entry count); a hostile header at the 180-entry limit costs it
about 0.4-0.7 ms, ours about 0.08-0.13 ms (``bench/bench_propagation.py``). And both
stock extractors log rejected header *values* at warning level, which lets a client
write arbitrary text into our logs. Parsing is ``tracing_app.context.w3c``'s; the
context is built with a single copy.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context, set_value
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.propagators import textmap
from opentelemetry.propagators.composite import CompositePropagator

from tracing_app.context.w3c import (
    BAGGAGE,
    BAGGAGE_MAX_BYTES,
    MAX_HEADER_LINES,
    TRACEPARENT,
    TRACEPARENT_MAX,
    TRACESTATE,
    TRACESTATE_READ_MAX,
    parse_baggage,
    parse_traceparent,
    parse_tracestate,
    write_baggage,
    write_traceparent,
)

logger = logging.getLogger(otel_context.__name__)  # detach() logs where the API's would

# The context key baggage lives under. The API offers no way to set many entries
# at once (set_baggage copies the dict per entry), so we find the key through the
# public clear() and set the whole dict in one step.
BAGGAGE_CONTEXT_KEY = next(iter(baggage.clear(Context())))
# The key the current span lives under, found the same way.
_SPAN_CONTEXT_KEY = next(iter(trace.set_span_in_context(trace.INVALID_SPAN, Context())))


def _runtime_context_var() -> contextvars.ContextVar[Context] | None:
    """The ``ContextVar`` the API's default runtime context (``ContextVarsRuntimeContext``)
    keeps the current context in; None for any other runtime context (``OTEL_PYTHON_CONTEXT``)
    or an API release that keeps it elsewhere."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    current = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(current, contextvars.ContextVar):
        return current
    return None


def _context_reader() -> Callable[[], Context]:
    """``opentelemetry.context.get_current`` without its two Python frames, for the hot paths:
    the runtime context's ``ContextVar.get`` (C), which returns exactly what ``get_current()``
    returns; else the API's own function."""
    current = _runtime_context_var()
    return current.get if current is not None else otel_context.get_current


# current_context() -> the current Context, as opentelemetry.context.get_current().
current_context = _context_reader()


def _context_writer() -> tuple[Callable[[Context], Any], Callable[[Any], None]]:
    """``opentelemetry.context.attach`` and the reset under ``detach`` without their Python
    frames (two each), as ``_context_reader``: the default runtime context's ``ContextVar``
    ``set`` and ``reset``, else the API's own functions."""
    current = _runtime_context_var()
    if current is not None:
        return current.set, current.reset
    return otel_context.attach, otel_context.detach


# attach(context) -> a token: makes ``context`` current, as opentelemetry.context.attach().
attach, _reset = _context_writer()


def detach(token: Any) -> None:
    """``opentelemetry.context.detach(token)``: the context before the matching ``attach``
    is current again. A token of another context (detached out of order, or in another
    thread or task) is logged, never raised, as the API does."""
    try:
        _reset(token)
    except Exception:
        logger.exception("Failed to detach context")


def with_span(span: trace.Span, context: Context | None = None) -> Context:
    """``trace.set_span_in_context(span, context)`` in one step: ``context`` (None: the
    current one) with ``span`` as its current span."""
    values = dict(current_context() if context is None else context)
    values[_SPAN_CONTEXT_KEY] = span
    return Context(values)


# The span context whose next injection (in this context) must write nothing: set by withhold().
_withheld: contextvars.ContextVar[trace.SpanContext | None] = contextvars.ContextVar(
    "tracing_app_withheld_span_context", default=None)


def withhold(span: trace.Span) -> None:
    """Make the next injection of ``span``'s context (in this context) write nothing:
    no ``traceparent``, ``tracestate`` or ``baggage``.

    For instrumentations that start a CLIENT span, call a request hook and then inject
    unconditionally (every OpenTelemetry HTTP client instrumentation): the hook calls
    this for a destination outside ``PROPAGATE_TO``. Keyed on the span rather than the
    headers because some of them (httpx) inject into a copy of the headers the hook
    saw; used up by that injection, so a hook whose request never went out cannot
    silence a later one. Honoured by ``GatedCompositePropagator`` (the global
    propagator tracing_app installs, whatever propagators it holds) and by
    ``inject_context``."""
    _withheld.set(span.get_span_context())


def _withheld_now(context: Context | None) -> bool:
    """Whether this injection is the withheld one; if so, it uses the withholding up."""
    withheld = _withheld.get()
    if withheld is None or current_span_context(context) is not withheld:
        return False
    _withheld.set(None)
    return True


class GatedCompositePropagator(CompositePropagator):
    """The propagators named in ``PROPAGATORS``, in order, except that an injection
    ``withhold()`` covers writes nothing, with any propagator (b3, jaeger, ours)."""

    def inject(self, carrier: textmap.CarrierT, context: Context | None = None,
               setter: textmap.Setter = textmap.default_setter) -> None:
        if not _withheld_now(context):
            super().inject(carrier, context=context, setter=setter)


def _joined(getter: textmap.Getter, carrier: object, name: str, limit: int) -> str | None:
    """All lines of header ``name`` joined by commas (RFC 9110), or None when absent or over ``limit``."""
    values = getter.get(carrier, name)
    if not values:
        return None
    if isinstance(values, str):
        values = [values]
    if len(values) > MAX_HEADER_LINES:
        return None
    total = 0
    for value in values:
        if not isinstance(value, str):
            return None
        total += len(value) + 1
        if total > limit + 1:
            return None
    return ",".join(values)



def with_baggage(entries: dict[str, object], context: Context | None = None) -> Context:
    """``context`` with its baggage replaced by ``entries``, in one copy."""
    return set_value(BAGGAGE_CONTEXT_KEY, dict(entries), context)



class TraceContextPropagator(textmap.TextMapPropagator):
    """``traceparent`` and ``tracestate``. A bad traceparent is ignored as a whole
    (a new trace starts); a bad tracestate is dropped and the traceparent kept."""

    def extract(self, carrier: textmap.CarrierT, context: Context | None = None,
                getter: textmap.Getter = textmap.default_getter) -> Context:
        if context is None:
            context = Context()
        header = _joined(getter, carrier, TRACEPARENT, TRACEPARENT_MAX)
        parsed = parse_traceparent(header) if header else None
        if parsed is None:
            return context
        trace_id, span_id, flags = parsed
        state_header = _joined(getter, carrier, TRACESTATE, TRACESTATE_READ_MAX)
        state = parse_tracestate(state_header) if state_header else None
        span_context = trace.SpanContext(
            trace_id=trace_id, span_id=span_id, is_remote=True,
            trace_flags=trace.TraceFlags(flags), trace_state=state,
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)

    def inject(self, carrier: textmap.CarrierT, context: Context | None = None,
               setter: textmap.Setter = textmap.default_setter) -> None:
        write_traceparent(carrier, current_span_context(context), setter)

    @property
    def fields(self) -> set[str]:
        return {TRACEPARENT, TRACESTATE}


class BaggagePropagator(textmap.TextMapPropagator):
    """``baggage``: incoming entries are added over the context's own."""

    def extract(self, carrier: textmap.CarrierT, context: Context | None = None,
                getter: textmap.Getter = textmap.default_getter) -> Context:
        if context is None:
            context = current_context()
        header = _joined(getter, carrier, BAGGAGE, BAGGAGE_MAX_BYTES)
        entries = parse_baggage(header) if header else None
        if not entries:
            return context
        existing = baggage.get_all(context)
        return with_baggage({**existing, **entries} if existing else entries, context)

    def inject(self, carrier: textmap.CarrierT, context: Context | None = None,
               setter: textmap.Setter = textmap.default_setter) -> None:
        write_baggage(carrier, baggage.get_all(context), setter)

    @property
    def fields(self) -> set[str]:
        return {BAGGAGE}


# -- our hot paths: one pass instead of the composite's ---------------------------------

_w3c_only: tuple[object, bool] = (None, False)


def global_is_w3c_only() -> bool:
    """Whether the global propagator is exactly ours: tracecontext then baggage (the default).
    Then ``inject_context`` may write both headers in one pass; any other setup (b3,
    jaeger, a user's own) goes through ``propagate`` as usual."""
    global _w3c_only
    textmap_ = propagate.get_global_textmap()
    cached = _w3c_only
    if cached[0] is not textmap_:
        kinds = [type(p) for p in getattr(textmap_, "_propagators", ())]
        cached = _w3c_only = (textmap_, type(textmap_) in (CompositePropagator, GatedCompositePropagator)
                              and kinds == [TraceContextPropagator, BaggagePropagator])
    return cached[1]


def current_span_context(context: Context | None = None) -> trace.SpanContext:
    """``trace.get_current_span(context).get_span_context()`` with one context lookup
    (and no ``isinstance`` against the ``Span`` ABC, a Python call per span)."""
    span = (current_context() if context is None else context).get(_SPAN_CONTEXT_KEY)
    try:  # a SpanContext is a non-empty tuple: "or" catches only a span that answers None
        return span.get_span_context() or trace.INVALID_SPAN_CONTEXT
    except AttributeError:  # nothing there (None), or not a span
        return trace.INVALID_SPAN_CONTEXT


def inject_context(carrier: textmap.CarrierT, context: Context | None = None,
                   setter: textmap.Setter = textmap.default_setter) -> None:
    """``propagate.inject(carrier, context, setter)``: the same headers, written in one
    pass when the propagators are the default W3C pair. Used on every request's
    outgoing calls and messages, where the composite's layers are a measurable cost."""
    if not global_is_w3c_only():
        propagate.inject(carrier, context=context, setter=setter)
        return
    context = current_context() if context is None else context
    if _withheld_now(context):
        return
    write_traceparent(carrier, current_span_context(context), setter)
    entries = context.get(BAGGAGE_CONTEXT_KEY)
    write_baggage(carrier, entries if isinstance(entries, dict) else None, setter)


def nothing_to_extract(carrier: textmap.CarrierT, getter: textmap.Getter) -> bool:
    """True when ``propagate.extract`` would find nothing: the propagators are the default
    W3C pair and the carrier has neither ``traceparent`` nor ``baggage`` (a ``tracestate``
    alone is ignored). The usual case for a request from outside."""
    return global_is_w3c_only() and not getter.get(carrier, TRACEPARENT) and not getter.get(carrier, BAGGAGE)
