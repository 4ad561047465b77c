"""The W3C codec: ``traceparent`` and ``tracestate`` (Trace Context) and ``baggage``
(Baggage), parsed within fixed bounds and written. The one place these header formats
are spelled out; propagators, carriers and integrations call it.

Every header is length-checked before it is split, splitting is bounded, each entry
is checked by one precompiled regex. Nothing about a header's value is ever logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from opentelemetry import trace
from opentelemetry.propagators import textmap
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


def write_traceparent(carrier: textmap.CarrierT, span_context: trace.SpanContext, setter: textmap.Setter) -> None:
    if span_context.is_valid:
        # format_traceparent's f-string, inlined: this runs on every outgoing call and message.
        setter.set(carrier, TRACEPARENT,
                   f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}")
        if span_context.trace_state:
            setter.set(carrier, TRACESTATE, span_context.trace_state.to_header())


def write_baggage(carrier: textmap.CarrierT, entries: Any, setter: textmap.Setter) -> None:
    if entries:
        header = format_baggage(entries.items())
        if header:
            setter.set(carrier, BAGGAGE, header)



def format_traceparent(span_context: trace.SpanContext) -> str:
    """The version-00 header of a valid ``span_context``."""
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"
