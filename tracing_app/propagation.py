"""W3C ``traceparent``, ``tracestate`` and ``baggage``, parsed within fixed bounds, and
the allowlist of hosts that outgoing calls may send them to.

Why our own propagators instead of the SDK's ``TraceContextTextMapPropagator`` and
``W3CBaggagePropagator``: the stock baggage extractor validates each entry with several
regexes and calls ``set_baggage`` once per entry, each call copying the whole baggage
dict (quadratic in the entry count); a hostile header at the 180-entry limit costs it
about 0.4-0.7 ms, ours about 0.08-0.13 ms (``bench/bench_propagation.py``). And both
stock extractors log rejected header *values* at warning level, which lets a client
write arbitrary text into our logs. Here every header is length-checked before it is
split, splitting is bounded, each entry is checked by one precompiled regex, and the
context is built with a single copy. Nothing about a header's value is ever logged.

``should_propagate(host)`` is the one place that decides whether an outgoing call
(HTTP, gRPC) may carry trace context and baggage: only to our own services.
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context, get_current, set_value
from opentelemetry.propagators import textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.span import TraceState

# W3C Trace Context: a version-00 traceparent is exactly 55 characters; later
# versions may append fields after a dash. Anything longer than this is refused
# before it is looked at.
TRACEPARENT_MAX = 512
TRACESTATE_MAX = 512  # the W3C "at least" limit, which the SDK also uses
TRACESTATE_MAX_MEMBERS = 32
# W3C Baggage limits (the same as the SDK's): the whole header, entries, one entry.
BAGGAGE_MAX_BYTES = 8192
BAGGAGE_MAX_ENTRIES = 180
BAGGAGE_MAX_ENTRY = 4096
# Header lines we join at most: a carrier with more lines is hostile.
MAX_HEADER_LINES = 32

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
BAGGAGE = "baggage"

_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_TRACESTATE_KEY = r"(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})"
_TRACESTATE_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_TRACESTATE_MEMBER_RE = re.compile(rf"[ \t]*({_TRACESTATE_KEY})=({_TRACESTATE_VALUE})[ \t]*")
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_BAGGAGE_VALUE = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"  # baggage-octet: no space " , ; \\
_BAGGAGE_ENTRY_RE = re.compile(rf"[ \t]*({_TOKEN})[ \t]*=[ \t]*({_BAGGAGE_VALUE})[ \t]*(?:;.*)?")
_TOKEN_RE = re.compile(_TOKEN)
# Characters a baggage value may carry unencoded (baggage-octet minus "%").
_BAGGAGE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"

# The context key baggage lives under. The API offers no way to set many entries
# at once (set_baggage copies the dict per entry), so we find the key through the
# public clear() and set the whole dict in one step.
_BAGGAGE_CONTEXT_KEY = next(iter(baggage.clear(Context())))
# The key the current span lives under, found the same way.
_SPAN_CONTEXT_KEY = next(iter(trace.set_span_in_context(trace.INVALID_SPAN, Context())))


# A carrier that must stay empty: set by block(); checked by our inject() methods.
_blocked_carrier: contextvars.ContextVar[object] = contextvars.ContextVar("tracing_app_blocked_carrier", default=None)


def block(carrier: object) -> None:
    """Make the next ``propagate.inject`` into ``carrier`` (in this context) write nothing.

    For instrumentation that injects unconditionally after calling a hook, such as
    ``opentelemetry-instrumentation-requests`` (see ``requests_request_hook``)."""
    _blocked_carrier.set(carrier)


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


def parse_traceparent(value: str) -> tuple[int, int, int] | None:
    """``(trace_id, span_id, flags)`` of a valid header, else None."""
    if len(value) > TRACEPARENT_MAX:
        return None
    match = _TRACEPARENT_RE.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return int(trace_id, 16), int(span_id, 16), int(flags, 16)


def parse_tracestate(value: str) -> TraceState | None:
    """A TraceState of a valid header; None when it is malformed or over the limits."""
    if len(value) > TRACESTATE_MAX:
        return None
    members = value.split(",", TRACESTATE_MAX_MEMBERS)
    if len(members) > TRACESTATE_MAX_MEMBERS:
        return None
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for member in members:
        if not member.strip(" \t"):
            continue  # empty list members are allowed
        match = _TRACESTATE_MEMBER_RE.fullmatch(member)
        if match is None or match.group(1) in seen:
            return None
        seen.add(match.group(1))
        pairs.append((match.group(1), match.group(2)))
    return TraceState(pairs)


def parse_baggage(value: str) -> dict[str, str]:
    """Entries of a baggage header, linear in its length. Invalid entries are skipped,
    entries past the 180th are dropped, an oversized header yields nothing."""
    if len(value) > BAGGAGE_MAX_BYTES or len(value.encode("utf-8", "surrogatepass")) > BAGGAGE_MAX_BYTES:
        return {}
    entries: dict[str, str] = {}
    match_entry = _BAGGAGE_ENTRY_RE.fullmatch
    for entry in value.split(",", BAGGAGE_MAX_ENTRIES)[:BAGGAGE_MAX_ENTRIES]:
        if len(entry) > BAGGAGE_MAX_ENTRY:
            continue
        match = match_entry(entry)
        if match is not None:
            key, text = match.groups()
            entries[key] = unquote(text, errors="replace") if "%" in text else text
    return entries


def with_baggage(entries: dict[str, object], context: Context | None = None) -> Context:
    """``context`` with its baggage replaced by ``entries``, in one copy."""
    return set_value(_BAGGAGE_CONTEXT_KEY, dict(entries), context)


def format_baggage(entries: Iterable[tuple[str, object]]) -> str:
    """The header for ``entries``, keeping to the W3C limits (entries past them are left out)."""
    parts: list[str] = []
    size = 0
    for key, value in entries:
        if len(parts) >= BAGGAGE_MAX_ENTRIES:
            break
        if not isinstance(key, str) or _TOKEN_RE.fullmatch(key) is None:
            continue
        part = f"{key}={quote(str(value), safe=_BAGGAGE_SAFE)}"
        if len(part) > BAGGAGE_MAX_ENTRY or size + len(part) + bool(parts) > BAGGAGE_MAX_BYTES:
            continue
        size += len(part) + bool(parts)
        parts.append(part)
    return ",".join(parts)


def _write_traceparent(carrier: textmap.CarrierT, span_context: trace.SpanContext, setter: textmap.Setter) -> None:
    if span_context.is_valid:
        setter.set(carrier, TRACEPARENT,
                   f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}")
        if span_context.trace_state:
            setter.set(carrier, TRACESTATE, span_context.trace_state.to_header())


def _write_baggage(carrier: textmap.CarrierT, entries: Any, setter: textmap.Setter) -> None:
    if entries:
        header = format_baggage(entries.items())
        if header:
            setter.set(carrier, BAGGAGE, header)


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
        state_header = _joined(getter, carrier, TRACESTATE, TRACESTATE_MAX)
        state = parse_tracestate(state_header) if state_header else None
        span_context = trace.SpanContext(
            trace_id=trace_id, span_id=span_id, is_remote=True,
            trace_flags=trace.TraceFlags(flags), trace_state=state,
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)

    def inject(self, carrier: textmap.CarrierT, context: Context | None = None,
               setter: textmap.Setter = textmap.default_setter) -> None:
        if carrier is not _blocked_carrier.get():
            _write_traceparent(carrier, current_span_context(context), setter)

    @property
    def fields(self) -> set[str]:
        return {TRACEPARENT, TRACESTATE}


class BaggagePropagator(textmap.TextMapPropagator):
    """``baggage``: incoming entries are added over the context's own."""

    def extract(self, carrier: textmap.CarrierT, context: Context | None = None,
                getter: textmap.Getter = textmap.default_getter) -> Context:
        if context is None:
            context = get_current()
        header = _joined(getter, carrier, BAGGAGE, BAGGAGE_MAX_BYTES)
        entries = parse_baggage(header) if header else None
        if not entries:
            return context
        existing = baggage.get_all(context)
        return with_baggage({**existing, **entries} if existing else entries, context)

    def inject(self, carrier: textmap.CarrierT, context: Context | None = None,
               setter: textmap.Setter = textmap.default_setter) -> None:
        if carrier is not _blocked_carrier.get():
            _write_baggage(carrier, baggage.get_all(context), setter)

    @property
    def fields(self) -> set[str]:
        return {BAGGAGE}


# -- where outgoing calls may carry context ----------------------------------------

SINGLE_LABEL = "<single-label>"  # matches hosts without a dot: compose/Kubernetes service names


class TargetAllowlist:
    """Host patterns: an exact name, ``*.suffix``, a CIDR network, or ``<single-label>``."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.exact: set[str] = set()
        self.suffixes: list[str] = []
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.single_label = False
        self.anything = False
        for pattern in patterns:
            pattern = pattern.strip().lower()
            if pattern == "*":
                self.anything = True
            elif pattern == SINGLE_LABEL:
                self.single_label = True
            elif pattern.startswith("*."):
                self.suffixes.append(pattern[1:])
            elif "/" in pattern:
                self.networks.append(ipaddress.ip_network(pattern, strict=False))
            else:
                self.exact.add(pattern)
        self.allows = functools.lru_cache(maxsize=256)(self._allows)

    def _allows(self, host: str) -> bool:
        host = _host_only(host)
        if not host:
            return False
        if self.anything or host in self.exact:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            return any(address in network for network in self.networks)
        if self.single_label and "." not in host:
            return True
        return any(host.endswith(suffix) for suffix in self.suffixes)


def _host_only(target: str) -> str:
    """``host`` out of ``host``, ``host:port``, ``[v6]:port``, a URL or a gRPC target like ``dns:///host:port``."""
    target = target.strip().lower()
    if target.startswith(("unix:", "unix-abstract:")):
        return "localhost"
    if target.startswith(("dns:", "ipv4:", "ipv6:")):
        # gRPC name syntax: dns:[//dns-server/]host[:port], ipv4:addr[:port][,addr...]
        target = target.split(":", 1)[1].rsplit("/", 1)[-1].split(",", 1)[0]
    elif "://" in target:
        target = target.split("://", 1)[1]
    target = target.split("/", 1)[0].rsplit("@", 1)[-1]
    if target.startswith("["):
        return target[1:].split("]", 1)[0]
    if target.count(":") == 1:
        target = target.split(":", 1)[0]
    return target.rstrip(".")


_compiled: tuple[object, TargetAllowlist] | None = None


def _current_allowlist() -> TargetAllowlist:
    """The allowlist of the current config, compiled once per config object."""
    global _compiled
    from .conf import get_config

    config = get_config()
    compiled = _compiled
    if compiled is None or compiled[0] is not config:
        compiled = _compiled = (config, TargetAllowlist(config.propagate_to))
    return compiled[1]


def should_propagate(target: str) -> bool:
    """May an outgoing call to ``target`` carry trace context and baggage?

    ``target`` is a host, ``host:port``, URL or gRPC target. True only for hosts
    matching ``TRACING["PROPAGATE_TO"]`` (default: our own services: single-label
    service names, localhost, ``*.internal``/``*.local``/cluster names, private networks).
    """
    try:
        return _current_allowlist().allows(target)
    except Exception:
        return False


def inject(carrier: object, target: str, setter: textmap.Setter = textmap.default_setter,
           context: Context | None = None) -> bool:
    """Inject the current trace context and baggage into ``carrier`` when ``target`` is
    allowed; returns whether it did. For outgoing HTTP/gRPC calls."""
    if not should_propagate(target):
        return False
    propagate.inject(carrier, context=context, setter=setter)
    return True


# -- our hot paths: one pass instead of the composite's ---------------------------------

_w3c_only: tuple[object, bool] = (None, False)


def _global_is_w3c_only() -> bool:
    """Whether the global propagator is exactly ours: tracecontext then baggage (the default).
    Then ``inject_context`` may write both headers in one pass; any other setup (b3,
    jaeger, a user's own) goes through ``propagate`` as usual."""
    global _w3c_only
    textmap_ = propagate.get_global_textmap()
    cached = _w3c_only
    if cached[0] is not textmap_:
        kinds = [type(p) for p in getattr(textmap_, "_propagators", ())]
        cached = _w3c_only = (textmap_, type(textmap_) is CompositePropagator
                              and kinds == [TraceContextPropagator, BaggagePropagator])
    return cached[1]


def current_span_context(context: Context | None = None) -> trace.SpanContext:
    """``trace.get_current_span(context).get_span_context()`` with one context lookup."""
    span = (get_current() if context is None else context).get(_SPAN_CONTEXT_KEY)
    return span.get_span_context() if isinstance(span, trace.Span) else trace.INVALID_SPAN_CONTEXT


def inject_context(carrier: textmap.CarrierT, context: Context | None = None,
                   setter: textmap.Setter = textmap.default_setter) -> None:
    """``propagate.inject(carrier, context, setter)``: the same headers, written in one
    pass when the propagators are the default W3C pair. Used on every request's
    outgoing calls and messages, where the composite's layers are a measurable cost."""
    if not _global_is_w3c_only():
        propagate.inject(carrier, context=context, setter=setter)
        return
    if carrier is _blocked_carrier.get():
        return
    context = get_current() if context is None else context
    _write_traceparent(carrier, current_span_context(context), setter)
    entries = context.get(_BAGGAGE_CONTEXT_KEY)
    _write_baggage(carrier, entries if isinstance(entries, dict) else None, setter)


def nothing_to_extract(carrier: textmap.CarrierT, getter: textmap.Getter) -> bool:
    """True when ``propagate.extract`` would find nothing: the propagators are the default
    W3C pair and the carrier has neither ``traceparent`` nor ``baggage`` (a ``tracestate``
    alone is ignored). The usual case for a request from outside."""
    return _global_is_w3c_only() and not getter.get(carrier, TRACEPARENT) and not getter.get(carrier, BAGGAGE)


def requests_request_hook(span: object, request: object) -> None:
    """``request_hook`` for ``RequestsInstrumentor().instrument(...)``: a request to a host
    not in ``PROPAGATE_TO`` leaves without ``traceparent``, ``tracestate`` or ``baggage``.
    (The instrumentor calls the hook, then injects into ``request.headers``.)"""
    headers = getattr(request, "headers", None)
    if headers is not None and not should_propagate(str(getattr(request, "url", "") or "")):
        block(headers)
