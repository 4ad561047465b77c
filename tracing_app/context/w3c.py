"""The W3C codec: ``traceparent`` and ``tracestate`` (Trace Context) and ``baggage``
(Baggage), parsed within fixed bounds and written. The one place these header formats
are spelled out; propagators, carriers and integrations call it.

Every header is length-checked before it is split, splitting is bounded, each entry
is checked by one precompiled regex. Nothing about a header's value is ever logged.
"""

from __future__ import annotations

import re
from collections.abc import ItemsView, Iterable, Iterator, KeysView, ValuesView
from typing import Any
from urllib.parse import quote, unquote

from opentelemetry import trace
from opentelemetry.propagators import textmap
from opentelemetry.trace.span import TraceState

# W3C Trace Context: a version-00 traceparent is exactly 55 characters; later
# versions may append fields after a dash. Anything longer than this is refused
# before it is looked at.
TRACEPARENT_MAX = 512
# tracestate: the longest combined header we read at all (the SDK's and the kombu
# carrier's bound; a longer one is discarded whole, which the spec allows for a header
# a vendor does not parse), and what we keep and pass on: the spec's "at least 512
# characters", reached by dropping whole entries as its truncation rule says.
TRACESTATE_READ_MAX = 8192
TRACESTATE_PROPAGATE_MAX = 512
TRACESTATE_MAX_MEMBERS = 32
TRACESTATE_LONG_ENTRY = 128  # entries longer than this are the first to go when truncating
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
# Trace Context Level 2: key = ( lcalpha / DIGIT ) 0*255( keychar ), keychar = lcalpha /
# DIGIT / "_" / "-" / "*" / "/" / "@" (Level 1's tenant@vendor shape is gone: "@" may
# appear anywhere but first); value = 0*255( chr ) nblk-chr. OWS around a member is not
# part of it; leading spaces of a value are.
_TRACESTATE_KEY = r"[a-z0-9][_0-9a-z\-*/@]{0,255}"
_TRACESTATE_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_TRACESTATE_MEMBER_RE = re.compile(rf"[ \t]*({_TRACESTATE_KEY})=({_TRACESTATE_VALUE})[ \t]*")
_TRACESTATE_PAIR_RE = re.compile(rf"({_TRACESTATE_KEY})=({_TRACESTATE_VALUE})")
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


def parse_tracestate(value: str) -> W3CTraceState | None:
    """The entries of a combined ``tracestate`` header (all its lines joined by commas),
    per W3C Trace Context Level 2; None when the header is to be discarded whole.

    - Discarded: a member that is neither ``key=value`` nor OWS, more than 32
      ``key=value`` members, a header over ``TRACESTATE_READ_MAX`` characters.
    - Empty and OWS-only members are skipped and not counted (they appear where
      header lines are joined, which is why the spec allows them).
    - A key seen twice: its first (left-most, most recently written) value is kept,
      the later one dropped, as the spec lets a vendor discard duplicates.
    - Over ``TRACESTATE_PROPAGATE_MAX`` characters once written without OWS: whole
      entries are dropped, those over 128 characters first, then from the right.
    """
    if len(value) > TRACESTATE_READ_MAX:
        return None
    entries: dict[str, str] = {}
    count = 0
    match_member = _TRACESTATE_MEMBER_RE.fullmatch
    for member in value.split(","):
        match = match_member(member)
        if match is None:
            if member.strip(" \t"):
                return None
            continue
        count += 1
        if count > TRACESTATE_MAX_MEMBERS:
            return None
        key, text = match.groups()
        if key not in entries:
            entries[key] = text
    if len(value) > TRACESTATE_PROPAGATE_MAX:  # the written header is never longer than the read one
        _truncate(entries)
    return W3CTraceState.of_valid(entries)


def _truncate(entries: dict[str, str]) -> None:
    """Drop whole entries until the written header fits ``TRACESTATE_PROPAGATE_MAX``
    (W3C Trace Context, "tracestate Limits")."""
    size = sum(len(key) + len(text) + 2 for key, text in entries.items()) - 1
    for only_long in (True, False):
        for key in reversed(list(entries)):
            if size <= TRACESTATE_PROPAGATE_MAX:
                return
            length = len(key) + 1 + len(entries[key])
            if not only_long or length > TRACESTATE_LONG_ENTRY:
                del entries[key]
                size -= length + 1


class W3CTraceState(TraceState):
    """The SDK's ``TraceState`` (an immutable ordered mapping of key to value) for
    Trace Context Level 2 entries: up to 32, keys and values as ``parse_tracestate``
    reads them. ``add``, ``update`` and ``delete`` return a new ``W3CTraceState``; an
    invalid key or value, or a 33rd entry, leaves it unchanged.

    Why not the SDK's class: it checks keys against Level 1 (``foo@``, ``a@b@c`` and a
    256-character key with ``@`` are refused), drops what fails and logs the refused
    key and value at warning level, so a client could write into our logs.
    """

    def __init__(self, entries: Iterable[tuple[str, str]] | None = None) -> None:
        super().__init__()
        members: dict[str, str] = {}
        for key, value in entries or ():
            if len(members) >= TRACESTATE_MAX_MEMBERS:
                break
            if isinstance(key, str) and isinstance(value, str) and key not in members \
                    and _TRACESTATE_PAIR_RE.fullmatch(f"{key}={value}"):
                members[key] = value
        self._members = members

    @classmethod
    def of_valid(cls, members: dict[str, str]) -> W3CTraceState:
        """A state holding ``members``, already checked by ``parse_tracestate`` (not again)."""
        state = cls.__new__(cls)
        TraceState.__init__(state)
        state._members = members
        return state

    @classmethod
    def from_header(cls, header_list: list[str]) -> W3CTraceState:
        return parse_tracestate(",".join(header_list)) or cls()

    def __contains__(self, item: object) -> bool:
        return item in self._members

    def __getitem__(self, key: str) -> str:
        return self._members[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._members.items())!r})"

    def keys(self) -> KeysView[str]:
        return self._members.keys()

    def items(self) -> ItemsView[str, str]:
        return self._members.items()

    def values(self) -> ValuesView[str]:
        return self._members.values()

    def to_header(self) -> str:
        return ",".join(f"{key}={value}" for key, value in self._members.items())

    def add(self, key: str, value: str) -> W3CTraceState:
        """A new state with ``key=value`` first; unchanged if ``key`` is present."""
        if key in self._members:
            return self
        return self._put_first(key, value)

    def update(self, key: str, value: str) -> W3CTraceState:
        """A new state with ``key=value`` first (moved there if present; added if not)."""
        return self._put_first(key, value)

    def delete(self, key: str) -> W3CTraceState:
        if key not in self._members:
            return self
        return W3CTraceState.of_valid({k: v for k, v in self._members.items() if k != key})

    def _put_first(self, key: str, value: str) -> W3CTraceState:
        if not (isinstance(key, str) and isinstance(value, str)
                and _TRACESTATE_PAIR_RE.fullmatch(f"{key}={value}")):
            return self
        rest = {k: v for k, v in self._members.items() if k != key}
        if len(rest) >= TRACESTATE_MAX_MEMBERS:
            return self
        return W3CTraceState.of_valid({key: value, **rest})


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


# A SpanContext is a tuple (opentelemetry-api's span.py): its fields by position, for the
# per-span and per-call paths where each property read is a Python call.
# tests/test_propagation.py checks them against the properties.
TRACE_ID, SPAN_ID, IS_REMOTE, TRACE_FLAGS, TRACE_STATE, IS_VALID = range(6)


def write_traceparent(carrier: textmap.CarrierT, span_context: trace.SpanContext, setter: textmap.Setter) -> None:
    if span_context[IS_VALID]:
        setter.set(carrier, TRACEPARENT, format_traceparent(span_context))
        state = span_context[TRACE_STATE]
        if state:
            setter.set(carrier, TRACESTATE, state.to_header())


def write_baggage(carrier: textmap.CarrierT, entries: Any, setter: textmap.Setter) -> None:
    if entries:
        header = format_baggage(entries.items())
        if header:
            setter.set(carrier, BAGGAGE, header)



def format_traceparent(span_context: trace.SpanContext) -> str:
    """The version-00 header of a valid ``span_context``."""
    return f"00-{span_context[TRACE_ID]:032x}-{span_context[SPAN_ID]:016x}-{span_context[TRACE_FLAGS]:02x}"
