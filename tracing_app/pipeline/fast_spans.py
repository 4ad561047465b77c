"""The SDK's span, made cheaper for the spans our own integrations start.

Where the time goes (SDK 1.45, a span with the 7 attributes of a query, hot loop
on this project's two-core benchmark machine): ~32 µs per ``start_span`` + ``end``,
of which ~40% is ``BoundedAttributes`` checking every attribute value
(``_clean_attribute`` per value, per element of a sequence), ~5% the
``ReadableSpan`` copy that ``end()`` makes for the processors, and the tracer's
self-observability bookkeeping (``_tracer_metrics``). Our integrations build their
attributes from ``str``, ``int``, ``float`` and ``bool`` values, so the check finds
nothing to clean; and a span that has ended can no longer change (every setter
checks ``_end_time``), so the copy protects nothing.

``FastTracer`` is the SDK tracer with its own ``start_span``: same sampler, ids,
processors, limits and resource, but the span is a ``FastSpan``, which

* takes attribute values that are plain ``str``/``int``/``float``/``bool`` as they
  are, and sends anything else (sequences, ``None``, other types) through the SDK's
  own cleaning, so what is recorded is exactly what the SDK would record;
* cuts strings to the length limits (``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT``,
  ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``, read by the SDK's ``SpanLimits``) itself, in
  span attributes, later ``set_attribute`` calls and events, as the SDK would, but
  without the SDK's WARNING per cut value (``QuietAttributes``);
* hands itself to ``on_end`` instead of a copy (it *is* a ``ReadableSpan``).

And under a valid parent, where the sampler follows the parent (the ``parentbased_*``
samplers ``provider.build_sampler`` makes, probed once per tracer, never assumed),
``start_span`` skips the sampler: the answer is known. ``drops_child_of_current()``
lets an integration skip even building the span's attributes (at a 0% ratio, every
span of every request).

Every other behaviour (``set_attribute``, events, links, status rules, limits,
``record_exception``, ``use_span``) is the SDK's, inherited. ``tests/test_fast_spans.py``
proves our spans export the same OTLP as the SDK's. Users' own spans, from
``trace.get_tracer()``, stay plain SDK spans.

``FastSpan`` fills the SDK's private fields, so it is used only with the SDK releases
it was verified against (``VERIFIED_SDK``; CI runs the tests at both ends,
``.ci/versions.sh``). Under any other release ``fast_tracer`` keeps the SDK's own
tracer and spans, with one warning: slower, never broken.
"""

from __future__ import annotations

import importlib.metadata
import logging
import random
from collections import deque
from collections.abc import Mapping, Sequence
from threading import Lock
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace.span import TraceState
from opentelemetry.trace.status import Status, StatusCode

from tracing_app.conf.requirements import release
from tracing_app.context.propagators import current_span_context
from tracing_app.context.w3c import IS_VALID, TRACE_FLAGS, TRACE_ID, TRACE_STATE
from tracing_app.pipeline.linked_traces import LinkedTraceSampler
from tracing_app.pipeline.sampling import ratio_of_roots
from tracing_app.semconv import URL_PATH

logger = logging.getLogger(__name__)

# opentelemetry-sdk releases FastSpan was verified against: from the first up to (not
# including) the second. 1.42 is the first with the fields and hooks it fills
# (Tracer._is_enabled, IdGenerator.is_trace_id_random, TraceFlags.RANDOM_TRACE_ID);
# older releases pyproject.toml accepts run on the SDK's spans (.ci/versions.sh "oldest"
# tests that). Raise the upper bound after running the tests on a newer SDK (the
# "newest" set), and pyproject.toml's opentelemetry-* ranges with it.
VERIFIED_SDK = ("1.42", "1.46")

_PLAIN = frozenset((str, int, float, bool))
_UNSET = Status(StatusCode.UNSET)
# W3C Trace Context level 2's "random trace id" flag; the API names it (TraceFlags.RANDOM_TRACE_ID)
# from 1.42 on, and this module must still import under older ones.
_RANDOM = 0x02
_SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED | _RANDOM)
_NOT_SAMPLED = trace.TraceFlags(_RANDOM)
_SAMPLED_NOT_RANDOM = trace.TraceFlags(trace.TraceFlags.SAMPLED)
_LOW_64_BITS = (1 << 64) - 1  # what TraceIdRatioBased compares with its bound
_NO_STATE = trace.DEFAULT_TRACE_STATE  # what SpanContext puts for a trace state of None
_MAX_TRACE_ID, _MAX_SPAN_ID = (1 << 128) - 1, (1 << 64) - 1
_SDK_SPAN_ID = RandomIdGenerator.generate_span_id


class FastSpan(sdk_trace.Span):
    # The fields are the SDK's (ReadableSpan's and Span's); only how they are filled differs.
    def __init__(self, name: str, context: trace.SpanContext, parent: trace.SpanContext | None,
                 tracer: FastTracer, attributes: Mapping[str, Any] | None, kind: trace.SpanKind,
                 links: Sequence[trace.Link]) -> None:
        limits = tracer._span_limits
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_info = tracer.instrumentation_info
        self._instrumentation_scope = tracer._instrumentation_scope
        self._parent = parent
        self._start_time: int | None = None
        self._end_time: int | None = None
        self._resource = tracer.resource
        self._status = _UNSET
        self._sampler = tracer.sampler
        self._trace_config = None
        self._record_exception = True
        self._set_status_on_exception = True
        self._span_processor = tracer.span_processor
        self._dispatch = tracer.dispatch()
        self._limits = limits
        self._lock = Lock()
        length_limit = limits.max_span_attribute_length
        # BoundedAttributes filled field by field, as its __init__ would, and inline: those calls
        # are a measurable part of a span this small (tests compare with the SDK's spans).
        recorded = QuietAttributes.__new__(QuietAttributes)
        recorded._dict = {}  # noqa: SLF001
        recorded.maxlen = limits.max_span_attributes
        recorded.dropped = 0
        recorded.max_value_len = length_limit
        recorded._lock = Lock()  # noqa: SLF001
        recorded._immutable = False  # noqa: SLF001
        if attributes:
            count_limit = limits.max_span_attributes
            plain = count_limit is None or len(attributes) <= count_limit
            for value in attributes.values():  # a loop, not all(genexpr): one Python call less per value
                if type(value) not in _PLAIN:
                    plain = False
                    break
            if plain:
                if length_limit is not None:
                    attributes = {key: _cut(value, length_limit) for key, value in attributes.items()}
                recorded._dict.update(attributes)  # noqa: SLF001  nothing the SDK would clean or drop
            else:
                recorded._set_items(attributes)  # noqa: SLF001  the SDK's cleaning and limits
        self._attributes = recorded
        # Most spans get no event and no link: they share one empty list until one is added.
        self._events = _NONE_YET
        self._links = self._new_links(links) if links else _NONE_YET
        self._record_end_metrics = None

    def _add_event(self, event: Any) -> None:
        with self._lock:
            if self._events is _NONE_YET:
                self._events = _bounded_list(self._limits.max_events)
        super()._add_event(event)

    def _add_link(self, link: trace.Link) -> None:
        with self._lock:
            if self._links is _NONE_YET:
                self._links = _bounded_list(self._limits.max_links)
        super()._add_link(link)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None,
                  timestamp: int | None = None) -> None:
        limit = self._limits.max_attribute_length
        if attributes and limit is not None:  # cut here: the SDK would log a warning per value it cuts
            attributes = {key: _cut(value, limit) for key, value in attributes.items()}
        super().add_event(name, attributes, timestamp)

    def start(self, start_time: int | None = None, parent_context: Any = None) -> None:
        with self._lock:
            if self._start_time is not None:
                logger.warning("Calling start() on a started span.")
                return
            self._start_time = start_time if start_time is not None else time_ns()
        for processor in self._dispatch.on_start:
            processor.on_start(self, parent_context=parent_context)

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._start_time is None:
                raise RuntimeError("Calling end() on a not started span.")
            if self._end_time is not None:
                logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
            self._attributes._immutable = True  # noqa: SLF001
        dispatch = self._dispatch
        for processor in dispatch.on_ending:
            processor._on_ending(self)  # noqa: SLF001
        for processor in dispatch.on_end:
            processor.on_end(self)  # ended spans are immutable: no copy needed


def _bounded_list(maxlen: int | None) -> BoundedList:
    """A ``BoundedList`` filled field by field, as its ``__init__`` would, in fewer calls."""
    bounded = BoundedList.__new__(BoundedList)
    bounded.dropped = 0
    bounded._dq = deque(maxlen=maxlen)  # noqa: SLF001
    bounded._lock = Lock()  # noqa: SLF001
    return bounded


# The events and links of every span that has none: read (by the SDK's properties and our
# encoder) and never written, since _add_event and _add_link give a span its own list first.
_NONE_YET = _bounded_list(0)


class Dispatch:
    """The processors that do something on start, on ending and on end, in order.

    The SDK's ``SynchronousMultiSpanProcessor`` calls every processor for every
    event: with ours (baggage copying, export) that is six calls per span, three
    of them to the base class's empty methods. Made again whenever the provider's
    processors change (``add_span_processor`` replaces their tuple).
    """

    def __init__(self, span_processor: SpanProcessor) -> None:
        self.source = getattr(span_processor, "_span_processors", None)
        processors = self.source if isinstance(span_processor, SynchronousMultiSpanProcessor) else (span_processor,)

        def overriding(name: str) -> tuple[SpanProcessor, ...]:
            return tuple(p for p in processors if getattr(type(p), name, None) is not getattr(SpanProcessor, name))

        self.on_start = overriding("on_start")
        self.on_ending = overriding("_on_ending")
        self.on_end = overriding("on_end")


def _cut(value: Any, limit: int) -> Any:
    """``value`` with its strings cut to ``limit`` characters, as the SDK would cut them."""
    if isinstance(value, str):
        return value[:limit] if len(value) > limit else value
    if isinstance(value, (list, tuple)):
        return tuple(item[:limit] if isinstance(item, str) else item for item in value)
    return value


class QuietAttributes(BoundedAttributes):
    """The SDK's attribute container, which cuts strings to the length limit itself.

    The SDK cuts them too, but logs a WARNING for every value it cuts: with
    ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` set, a warning per long statement or
    header, for a limit the user chose. Cut first, the SDK finds nothing to cut.

    Attributes set after the start (``set_attribute``, ``set_attributes``: the request
    span's server attributes and its response, a query's row count) take the same
    shortcut as those given at the start: a plain ``str``/``int``/``float``/``bool``
    under a non-empty ``str`` key is what the SDK's cleaning would return unchanged,
    so it is stored directly, with the SDK's own count limit (``_setitem_locked``).
    Anything else goes through the SDK's cleaning.
    """

    def __setitem__(self, key: str, value: Any) -> None:
        limit = self.max_value_len
        if type(value) in _PLAIN and type(key) is str and key and not self._immutable and self.maxlen != 0:
            if limit is not None and type(value) is str and len(value) > limit:
                value = value[:limit]
            with self._lock:
                self._setitem_locked(key, value)
            return
        if limit is not None:
            value = _cut(value, limit)
        super().__setitem__(key, value)

    def _set_items(self, attributes: Mapping[str, Any]) -> None:
        limit = self.max_value_len
        plain = not self._immutable and self.maxlen != 0
        if plain:
            for key, value in attributes.items():
                if type(value) not in _PLAIN or type(key) is not str or not key:
                    plain = False
                    break
        if plain:
            recorded, maxlen = self._dict, self.maxlen
            with self._lock:
                if limit is None and (maxlen is None or len(recorded) + len(attributes) <= maxlen):
                    # Room for all, nothing to cut: the keys' order is what deleting each first gives.
                    for key in attributes.keys() & recorded.keys():
                        del recorded[key]
                    recorded.update(attributes)
                    return
                for key, value in attributes.items():
                    if limit is not None and type(value) is str and len(value) > limit:
                        value = value[:limit]
                    if key in recorded:
                        del recorded[key]
                    if maxlen is not None and len(recorded) >= maxlen:
                        self._setitem_locked(key, value)  # the SDK's drop of the oldest, and its warning
                    else:
                        recorded[key] = value
            return
        if limit is not None:
            attributes = {key: _cut(value, limit) for key, value in attributes.items()}
        super()._set_items(attributes)




class FastTracer(sdk_trace.Tracer):
    """Made from an SDK tracer by ``fast_tracer()``; starts ``FastSpan``s."""

    # Set by fast_tracer() from what the sampler does under a valid parent.
    drops_unsampled_children = False
    keeps_sampled_children = False
    root_sampler: Sampler | None = None
    root_ratio: tuple[int, Any] | None = None  # sampling.ratio_of_roots(root_sampler)
    # The SDK's RandomIdGenerator: a span id is random.getrandbits(64), drawn here without its
    # Python call (and drawn by the generator itself in the 2**-64 case that this gives 0).
    # Decided when the tracer is made (fast_tracer): a generator patched later is not asked,
    # while random.getrandbits is looked up at each draw, so a test may patch that at any time.
    random_span_ids = False
    _dispatch: Dispatch | None = None  # made by dispatch(), again when the processors change

    def start_span(  # noqa: PLR0913  the API's signature
        self,
        name: str,
        context: Any = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[trace.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        links = links or ()
        parent = current_span_context(context)  # the SpanContext's fields read by position below
        if not self._is_enabled():
            return trace.NonRecordingSpan(parent)
        if not parent[IS_VALID]:
            parent = None
            trace_id = self.id_generator.generate_trace_id()
            if self.root_ratio is not None and not links:
                # The trace id against the ratio, as the SDK's TraceIdRatioBased compares them, without
                # its SamplingResult: every request's root span at any ratio (sampling.ratio_of_roots).
                bound, never = self.root_ratio
                path = attributes.get(URL_PATH) if never is not None and attributes else None
                sampled = trace_id & _LOW_64_BITS < bound and not (isinstance(path, str) and never.search(path))
                span_id = self.random_span_ids and random.getrandbits(64) or self.id_generator.generate_span_id()
                # The tuple SpanContext.__new__ builds, with its validity check, without its Python call.
                valid = 0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID
                flags = _SAMPLED if sampled else _NOT_SAMPLED
                span_context = tuple.__new__(trace.SpanContext, (trace_id, span_id, False, flags, _NO_STATE, valid))
                if not sampled:
                    return trace.NonRecordingSpan(span_context)
                return self._start(name, span_context, None, attributes, kind, links, start_time, context,
                                   record_exception, set_status_on_exception)
        else:
            trace_id, parent_flags = parent[TRACE_ID], parent[TRACE_FLAGS]
            # A parent-based sampler's answer under a valid parent is known in advance.
            if parent_flags & trace.TraceFlags.SAMPLED:
                if self.keeps_sampled_children:
                    flags = _SAMPLED if parent_flags & _RANDOM else _SAMPLED_NOT_RANDOM
                    span_id = self.random_span_ids and random.getrandbits(64) or self.id_generator.generate_span_id()
                    valid = 0 < span_id <= _MAX_SPAN_ID  # the parent's trace id is valid
                    span_context = tuple.__new__(trace.SpanContext, (trace_id, span_id, False, flags,
                                                                     parent[TRACE_STATE], valid))
                    return self._start(name, span_context, parent, attributes, kind, links, start_time, context,
                                       record_exception, set_status_on_exception)
            elif self.drops_unsampled_children:
                return trace.NonRecordingSpan(trace.SpanContext(
                    trace_id, self.id_generator.generate_span_id(), is_remote=False,
                    trace_flags=parent_flags, trace_state=parent[TRACE_STATE],
                ))
        # A root without links: what the wrappers would end up asking (see parent_decides).
        sampler = self.root_sampler if parent is None and not links else self.sampler
        result = sampler.should_sample(context, trace_id, name, kind, attributes, links)
        # The SDK's id generator makes random trace ids; a continued trace keeps its parent's flag.
        random_id = parent.trace_flags.random_trace_id if parent is not None else True
        sampled = result.decision.is_sampled()
        if random_id:
            flags = _SAMPLED if sampled else _NOT_SAMPLED
        else:
            flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else trace.TraceFlags.DEFAULT)
        span_context = trace.SpanContext(trace_id, self.id_generator.generate_span_id(), is_remote=False,
                                         trace_flags=flags, trace_state=result.trace_state)
        if not result.decision.is_recording():
            return trace.NonRecordingSpan(span_context)
        return self._start(name, span_context, parent, result.attributes, kind, links, start_time, context,
                           record_exception, set_status_on_exception)

    def dispatch(self) -> Dispatch:
        dispatch = self._dispatch
        if dispatch is None or dispatch.source is not getattr(self.span_processor, "_span_processors", None):
            dispatch = self._dispatch = Dispatch(self.span_processor)
        return dispatch

    def _start(self, name: str, span_context: trace.SpanContext, parent: trace.SpanContext | None,  # noqa: PLR0913
               attributes: Mapping[str, Any] | None, kind: trace.SpanKind, links: Sequence[trace.Link],
               start_time: int | None, context: Any, record_exception: bool, set_status_on_exception: bool) -> FastSpan:
        # object.__new__, not FastSpan(...): the SDK's Span.__new__ is a Python call per span.
        span = object.__new__(FastSpan)
        span.__init__(name, span_context, parent, self, attributes, kind, links)
        span._record_exception = record_exception  # noqa: SLF001
        span._set_status_on_exception = set_status_on_exception  # noqa: SLF001
        # What FastSpan.start does, without its lock and double-start check: nobody else has this span yet.
        span._start_time = start_time if start_time is not None else time_ns()  # noqa: SLF001
        for processor in span._dispatch.on_start:  # noqa: SLF001
            processor.on_start(span, parent_context=context)
        return span


def sdk_verified(version: str | None = None) -> bool:
    """Whether ``version`` (default: the installed opentelemetry-sdk) is in ``VERIFIED_SDK``."""
    if version is None:
        try:
            version = importlib.metadata.version("opentelemetry-sdk")
        except importlib.metadata.PackageNotFoundError:
            return False  # an SDK not installed as a distribution: its release is unknown
    oldest, first_unverified = VERIFIED_SDK
    return release(oldest) <= release(version) < release(first_unverified)


_warned_unverified = False


def _unverified_sdk() -> bool:
    """True (and one warning per process) when the installed SDK is outside ``VERIFIED_SDK``."""
    global _warned_unverified
    if sdk_verified():
        return False
    if not _warned_unverified:
        _warned_unverified = True
        try:
            version = importlib.metadata.version("opentelemetry-sdk")
        except importlib.metadata.PackageNotFoundError:
            version = "of unknown version"
        logger.warning("tracing_app: opentelemetry-sdk %s is not one tracing_app's span class was verified with "
                       "(>=%s,<%s); the SDK's own spans are used (same telemetry, more CPU per span)",
                       version, *VERIFIED_SDK)
    return True


def fast_tracer(tracer: trace.Tracer) -> trace.Tracer:
    """``tracer`` as a ``FastTracer`` when it is exactly the SDK's tracer of a verified SDK
    release (``VERIFIED_SDK``); otherwise unchanged."""
    if type(tracer) is not sdk_trace.Tracer or _unverified_sdk():
        return tracer
    if tracer.id_generator.is_trace_id_random() is not True:  # (an IdGenerator method from SDK 1.42)
        return tracer
    fast = FastTracer.__new__(FastTracer)
    fast.__dict__.update(tracer.__dict__)
    fast.drops_unsampled_children, fast.keeps_sampled_children = parent_decides(tracer.sampler)
    fast.root_sampler = root_sampler(tracer.sampler)
    fast.root_ratio = ratio_of_roots(fast.root_sampler)
    generator = tracer.id_generator
    # Exactly the SDK's draw: not a subclass, nor a generate_span_id a test patched in.
    fast.random_span_ids = (type(generator) is RandomIdGenerator and "generate_span_id" not in vars(generator)
                            and RandomIdGenerator.generate_span_id is _SDK_SPAN_ID)
    return fast


_PROBE_STATE = TraceState([("probe", "1")])
_PROBE_ATTRIBUTES = {"probe": 1}


def _probe_parent(sampled: bool, remote: bool) -> Any:
    flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else trace.TraceFlags.DEFAULT)
    span_context = trace.SpanContext(1, 1, is_remote=remote, trace_flags=flags, trace_state=_PROBE_STATE)
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


def _without_link_sampler(sampler: Sampler) -> Sampler:
    """What ``LinkedTraceSampler`` asks whenever a span has a valid parent or no links."""
    while isinstance(sampler, LinkedTraceSampler):
        sampler = sampler.delegate
    return sampler


def parent_decides(sampler: Sampler) -> tuple[bool, bool]:
    """Whether ``sampler`` drops every span whose (local or remote) parent is not sampled,
    and keeps every span whose parent is, with its attributes and the parent's trace state:
    what the ``parentbased_*`` samplers do by default. Probed, never assumed."""
    sampler = _without_link_sampler(sampler)  # under a valid parent it only asks its delegate
    if not isinstance(sampler, ParentBased):
        return False, False
    drops = keeps = True
    for remote in (False, True):
        dropped = sampler.should_sample(_probe_parent(False, remote), 1, "probe", trace.SpanKind.CLIENT)
        drops = drops and dropped.decision == Decision.DROP
        kept = sampler.should_sample(_probe_parent(True, remote), 1, "probe", trace.SpanKind.CLIENT,
                                     _PROBE_ATTRIBUTES)
        keeps = keeps and (kept.decision == Decision.RECORD_AND_SAMPLE and dict(kept.attributes) == _PROBE_ATTRIBUTES
                           and kept.trace_state == _PROBE_STATE)
    return drops, keeps


def root_sampler(sampler: Sampler) -> Sampler:
    """The sampler that decides a root span without links: ``LinkedTraceSampler`` acts only
    on links, ``ParentBased`` asks its root sampler when there is no parent."""
    sampler = _without_link_sampler(sampler)
    return sampler._root if isinstance(sampler, ParentBased) else sampler  # noqa: SLF001


def drops_child_of_current(tracer: trace.Tracer, context: Any = None) -> bool:
    """Whether a span started now with ``tracer`` would be dropped: its parent, the current
    span, is not sampled. An integration can then skip the span (and its attributes) and
    run, or propagate, under the current context. ``context``: the current one, when the
    caller has it already (None: read it)."""
    if not getattr(tracer, "drops_unsampled_children", False):
        return False
    parent = current_span_context(context)
    return parent[IS_VALID] and not parent[TRACE_FLAGS] & trace.TraceFlags.SAMPLED
