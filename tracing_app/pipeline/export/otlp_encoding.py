"""Finished SDK spans as an OTLP ``ExportTraceServiceRequest``, written straight to protobuf bytes.

Why our own encoder: the SDK's ``encode_spans`` builds a protobuf message object
for every span, attribute and value and then serializes the tree; that costs
about as much CPU as creating the span did (measured ~30 µs per span against
~8 µs here), and in a process with a GIL the export thread's CPU is taken from
the requests. Writing the wire format directly, with the resource, scope and
attribute keys encoded once and cached, is the same bytes for a fraction of the
work. ``tests/test_otlp_encoding.py`` decodes our bytes with ``opentelemetry-proto``
and compares them with the SDK encoder's message, field for field.

Field numbers are those of ``opentelemetry/proto/trace/v1/trace.proto`` and
``common.proto``; the comments name each one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from opentelemetry.sdk.trace import ReadableSpan

from tracing_app.context.w3c import IS_REMOTE, SPAN_ID, TRACE_ID, TRACE_STATE

_SMALL = [bytes((n,)) for n in range(128)]
_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack

# Span.flags bits: "has is_remote" (0x100) and "is_remote" (0x200), as the SDK sets them.
FLAGS_LOCAL = _pack_fixed32(0x100)
FLAGS_REMOTE = _pack_fixed32(0x300)


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64  # int64 negatives are ten-byte two's complement varints
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    # AnyValue: 1 string, 2 bool, 3 int64, 4 double, 5 array, 6 kvlist, 7 bytes.
    if isinstance(value, str):
        return _field(b"\x0a", value.encode("utf-8", "replace"))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        # ArrayValue: 1 repeated AnyValue
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(item)) for item in value))
    if isinstance(value, Mapping):
        # KeyValueList: 1 repeated KeyValue
        return _field(b"\x32", b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items()))
    if value is None:
        return b""
    raise TypeError(f"cannot encode attribute value of type {type(value).__name__}")


_KEYS: dict[str, bytes] = {}


def _key_value(key: str, value: Any) -> bytes:
    # KeyValue: 1 key, 2 value. Keys repeat across spans: encode each once.
    encoded_key = _KEYS.get(key)
    if encoded_key is None:
        encoded_key = _field(b"\x0a", key.encode("utf-8", "replace"))
        if len(_KEYS) < 4096:
            _KEYS[key] = encoded_key
    return encoded_key + _field(b"\x12", _any_value(value))


# Encoded attributes by (tag, key, type, value): most attribute values repeat from span
# to span (db.system.name, a route, a query's text), and a dict lookup is far cheaper
# than encoding. The type is part of the key because True == 1 == 1.0 in Python.
_PAIRS: dict[tuple[bytes, str, type, Any], bytes] = {}
PAIR_CACHE_SIZE = 16384
PAIR_CACHE_MAX_BYTES = 1024


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    parts = []
    cache = _PAIRS
    for key, value in attributes.items():
        cache_key = (tag, key, value.__class__, value)
        try:
            parts.append(cache[cache_key])
            continue
        except KeyError:
            pass
        except TypeError:
            cache_key = None  # unhashable (a list value): encode without caching
        try:
            encoded = _field(tag, _key_value(key, value))
        except (TypeError, ValueError, OverflowError):
            continue  # the SDK validates values on set; skip what still cannot be encoded
        parts.append(encoded)
        if cache_key is not None and len(encoded) <= PAIR_CACHE_MAX_BYTES:
            if len(cache) >= PAIR_CACHE_SIZE:
                cache.clear()
            cache[cache_key] = encoded
    return b"".join(parts)


_NAMES: dict[tuple[str, Any], bytes] = {}


def encode_span(span: ReadableSpan) -> bytes:
    """One ``Span`` message (without its field tag).

    Reads the ``ReadableSpan``'s fields (``_context``, ``_attributes``...) rather than its
    properties, which copy (``attributes``, ``events``, ``links``) or call per item; the
    fields are the same from SDK 1.30 to 1.45 (CI encodes with both ends of the range)."""
    context, parent, name, kind = span._context, span._parent, span._name, span._kind  # noqa: SLF001
    attributes, events, links = span._attributes, span._events, span._links  # noqa: SLF001
    # Span: 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind.
    out = [b"\x0a\x10", context[TRACE_ID].to_bytes(16, "big"), b"\x12\x08", context[SPAN_ID].to_bytes(8, "big")]
    trace_state = context[TRACE_STATE]
    if trace_state:
        out.append(_field(b"\x1a", ",".join(f"{k}={v}" for k, v in trace_state.items()).encode()))
    if parent is not None:
        out.append(b"\x22\x08" + parent[SPAN_ID].to_bytes(8, "big"))
    name_and_kind = _NAMES.get((name, kind))
    if name_and_kind is None:
        # 5 name, 6 kind (SDK kinds are the proto enum minus one); span names repeat too.
        name_and_kind = _field(b"\x2a", name.encode("utf-8", "replace")) + b"\x30" + _SMALL[kind.value + 1]
        if len(_NAMES) >= PAIR_CACHE_SIZE:
            _NAMES.clear()
        _NAMES[(name, kind)] = name_and_kind
    out.append(name_and_kind)
    # 7 start_time_unix_nano, 8 end_time_unix_nano (fixed64); 9 attributes; 10 dropped count.
    out.append(b"\x39" + _pack_fixed64(span._start_time or 0))  # noqa: SLF001
    out.append(b"\x41" + _pack_fixed64(span._end_time or 0))  # noqa: SLF001
    # A BoundedAttributes' dict and a BoundedList's deque: iterated without their Python methods.
    out.append(_attributes(b"\x4a", getattr(attributes, "_dict", attributes)))
    dropped = getattr(attributes, "dropped", 0)
    if dropped:
        out.append(b"\x50" + _varint(dropped))
    # 11 events (Event: 1 time fixed64, 2 name, 3 attributes, 4 dropped), 12 dropped count.
    for event in getattr(events, "_dq", events):
        body = b"\x09" + _pack_fixed64(event.timestamp) + _field(b"\x12", event.name.encode("utf-8", "replace"))
        body += _attributes(b"\x1a", event.attributes)
        if event.dropped_attributes:
            body += b"\x20" + _varint(event.dropped_attributes)
        out.append(_field(b"\x5a", body))
    dropped = getattr(events, "dropped", 0)
    if dropped:
        out.append(b"\x60" + _varint(dropped))
    # 13 links (Link: 1 trace_id, 2 span_id, 4 attributes, 5 dropped, 6 flags fixed32), 14 dropped count.
    for link in getattr(links, "_dq", links):
        linked = link.context
        body = b"\x0a\x10" + linked.trace_id.to_bytes(16, "big") + b"\x12\x08" + linked.span_id.to_bytes(8, "big")
        body += _attributes(b"\x22", link.attributes)
        if link.dropped_attributes:
            body += b"\x28" + _varint(link.dropped_attributes)
        body += b"\x35" + (FLAGS_REMOTE if linked.is_remote else FLAGS_LOCAL)
        out.append(_field(b"\x6a", body))
    dropped = getattr(links, "dropped", 0)
    if dropped:
        out.append(b"\x70" + _varint(dropped))
    # 15 status (Status: 2 message, 3 code); 16 flags (fixed32, tag 0x85 0x01).
    status = span._status  # noqa: SLF001
    body = b""
    if status.description:
        body = _field(b"\x12", status.description.encode("utf-8", "replace"))
    if status.status_code.value:
        body += b"\x18" + _SMALL[status.status_code.value]
    out.append(_field(b"\x7a", body))
    out.append(b"\x85\x01" + (FLAGS_REMOTE if parent is not None and parent[IS_REMOTE] else FLAGS_LOCAL))
    return b"".join(out)


# A chance for the export thread to let request threads run (export.py): every 16 spans,
# about 0.1 ms of encoding (0.25 ms on a slow two-core host), the longest a request
# thread then waits for the GIL because of export.
PAUSE_EVERY = 16


class Chunk(NamedTuple):
    """Spans and the one ``ExportTraceServiceRequest`` that holds them."""

    spans: list[ReadableSpan]
    payload: bytes


class Encoder:
    """Encodes batches; remembers each resource's and scope's bytes (they never change)."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Any, bytes, bytes]] = {}
        self._scopes: dict[int, tuple[Any, bytes, bytes]] = {}

    def _resource(self, resource: Any) -> tuple[Any, bytes, bytes]:
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            # ResourceSpans: 1 resource (Resource: 1 attributes); 3 schema_url.
            encoded = _field(b"\x0a", _attributes(b"\x0a", resource.attributes))
            schema = _field(b"\x1a", resource.schema_url.encode()) if resource.schema_url else b""
            cached = (resource, encoded, schema)
            if len(self._resources) > 64:
                self._resources.clear()
            self._resources[id(resource)] = cached
        return cached

    def _scope(self, scope: Any) -> tuple[Any, bytes, bytes]:
        cached = self._scopes.get(id(scope))
        if cached is None or cached[0] is not scope:
            # ScopeSpans: 1 scope (InstrumentationScope: 1 name, 2 version, 3 attributes); 3 schema_url.
            body = b""
            if scope is not None:
                body = _field(b"\x0a", scope.name.encode()) if scope.name else b""
                body += _field(b"\x12", scope.version.encode()) if scope.version else b""
                body += _attributes(b"\x1a", scope.attributes)
            schema = _field(b"\x1a", scope.schema_url.encode()) if scope is not None and scope.schema_url else b""
            cached = (scope, _field(b"\x0a", body), schema)
            if len(self._scopes) > 256:
                self._scopes.clear()
            self._scopes[id(scope)] = cached
        return cached

    def encode(self, spans: Iterable[ReadableSpan], pause: Callable[[], None] | None = None) -> bytes:
        """An ``ExportTraceServiceRequest`` (1: repeated ResourceSpans) holding ``spans``;
        ``pause()`` is called after every ``PAUSE_EVERY`` spans."""
        return self._assemble(self._encoded(spans, pause))

    def encode_chunks(
        self, spans: Sequence[ReadableSpan], max_bytes: int, pause: Callable[[], None] | None = None,
    ) -> tuple[list[Chunk], list[ReadableSpan]]:
        """``spans`` as requests of at most ``max_bytes`` bytes each, in order, and the spans
        that exceed ``max_bytes`` on their own (in no request).

        Sizes are exact for the spans and an upper bound for the resource and scope
        envelopes (their length prefixes counted at ten bytes each), so every request
        is at most ``max_bytes`` long.
        """
        chunks: list[Chunk] = []
        too_large: list[ReadableSpan] = []
        current: list[tuple[ReadableSpan, bytes]] = []
        size = 0
        envelopes: set[tuple[int, int]] = set()
        envelope_sizes: dict[tuple[int, int], int] = {}  # spans share a few resources and scopes
        for span, body in self._encoded(spans, pause):
            key = (id(span._resource), id(span._instrumentation_scope))  # noqa: SLF001  the fields, not properties
            envelope = envelope_sizes.get(key)
            if envelope is None:
                envelope = envelope_sizes[key] = self._envelope_size(span)
            if len(body) + envelope > max_bytes:
                too_large.append(span)
                continue
            cost = len(body) + (0 if key in envelopes else envelope)
            if current and size + cost > max_bytes:
                chunks.append(Chunk([s for s, _ in current], self._assemble(current)))
                current, size, envelopes = [], 0, set()
                cost = len(body) + envelope
            current.append((span, body))
            envelopes.add(key)
            size += cost
        if current:
            chunks.append(Chunk([s for s, _ in current], self._assemble(current)))
        return chunks, too_large

    def _envelope_size(self, span: ReadableSpan) -> int:
        # ResourceSpans and ScopeSpans around a span: their contents plus a tag and a
        # length prefix each (at most ten bytes), counted as if every span opened both.
        _, resource, resource_schema = self._resource(span.resource)
        _, scope, scope_schema = self._scope(span.instrumentation_scope)
        return len(resource) + len(resource_schema) + len(scope) + len(scope_schema) + 22

    def _encoded(
        self, spans: Iterable[ReadableSpan], pause: Callable[[], None] | None,
    ) -> Iterator[tuple[ReadableSpan, bytes]]:
        for index, span in enumerate(spans, 1):
            if pause is not None and not index % PAUSE_EVERY:
                pause()
            yield span, _field(b"\x12", encode_span(span))  # ScopeSpans.spans = 2

    def _assemble(self, encoded: Iterable[tuple[ReadableSpan, bytes]]) -> bytes:
        grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
        for span, body in encoded:
            resource, scope = span._resource, span._instrumentation_scope  # noqa: SLF001
            by_scope = grouped.get(id(resource))
            if by_scope is None:
                by_scope = grouped[id(resource)] = (resource, {})
            entry = by_scope[1].get(id(scope))
            if entry is None:
                entry = by_scope[1][id(scope)] = (scope, [])
            entry[1].append(body)
        out = []
        for resource, scopes in grouped.values():
            _, encoded_resource, resource_schema = self._resource(resource)
            scope_spans = []
            for scope, encoded_spans in scopes.values():
                _, encoded_scope, scope_schema = self._scope(scope)
                scope_spans.append(_field(b"\x12", encoded_scope + b"".join(encoded_spans) + scope_schema))
            out.append(_field(b"\x0a", encoded_resource + b"".join(scope_spans) + resource_schema))
        return b"".join(out)


# A span's fixed fields as encoded (ids, times, kind, flags, status and their tags);
# each attribute adds its value and about 24 bytes for its key (attribute names are
# mostly under 20 characters), tags and lengths.
SPAN_FIXED_BYTES = 80
ATTRIBUTE_BYTES = 24
NUMBER_BYTES = 10
EVENT_OR_LINK_BYTES = 40


def estimated_size(span: ReadableSpan) -> int:
    """About how many bytes ``span`` takes encoded, without encoding it.

    Text counts by its length in characters (exact for ASCII), a number or boolean by
    its attribute's fixed share, a sequence by its items. Used where encoding would be too costly: on
    the thread that ends the span, to cap the export queue in bytes. About 1-2 µs for
    a query span: the SDK's containers are read directly (their public views copy or
    lock per item, 5-10 µs).
    """
    size = SPAN_FIXED_BYTES + len(span._name) + _attributes_size(span._attributes)  # noqa: SLF001
    # A BoundedList's deque itself: the list's __len__ (a Python call) runs on every span.
    events, links = getattr(span._events, "_dq", span._events), getattr(span._links, "_dq", span._links)  # noqa: SLF001
    if events:
        for event in events:
            size += EVENT_OR_LINK_BYTES + len(event.name) + _attributes_size(event.attributes)
    if links:
        for link in links:
            size += EVENT_OR_LINK_BYTES + _attributes_size(link.attributes)
    return size


def _attributes_size(attributes: Mapping[str, Any] | None) -> int:
    if type(attributes) is not dict:
        # A BoundedAttributes: its dict (items() takes a lock per item, len() is a Python call).
        attributes = getattr(attributes, "_dict", attributes)
    if not attributes:
        return 0
    # Keys are not measured (a fixed share each): the long values are what the estimate is for,
    # and skipping them halves its cost (about 2 µs per query span on the benchmark host).
    size = ATTRIBUTE_BYTES * len(attributes)
    for value in attributes.values():
        kind = value.__class__
        if kind is str:
            size += len(value)
        elif kind is tuple or kind is list:
            size += sum(len(item) if item.__class__ is str else NUMBER_BYTES for item in value)
    return size
