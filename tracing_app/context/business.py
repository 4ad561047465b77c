"""Business context (who, for which tenant) as W3C baggage, and the HTTP trust boundary.

At the start of a request the resolver (``TRACING["BAGGAGE_RESOLVER"]``, a dotted
path to ``resolver(request) -> dict``) names the user and tenant. Its entries (only
the keys in ``BAGGAGE_KEYS``) become baggage, which the global propagator carries
on every hop (HTTP, Celery, kombu, outbox, gRPC). In every process,
``BaggageSpanProcessor`` copies the entries listed in ``BAGGAGE_SPAN_ATTRIBUTES``
onto each span as attributes, hashing those in ``BAGGAGE_HASHED``. Tasks read the
context with ``tracing_app.business_context()``.

Trust boundary: what a public client sends in ``traceparent`` and ``baggage`` is
handled by ``INCOMING_POLICY`` (per path prefix: ``INCOMING_POLICY_ROUTES``):

- ``trust``: continue the remote trace, keep all incoming baggage;
- ``context`` (default): continue the remote trace, drop incoming baggage keys
  the app sets itself (``BAGGAGE_KEYS``), so a client cannot claim a tenant;
- ``link``: drop incoming baggage and start a new trace that links to the remote span.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.utils.module_loading import import_string
from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.trace import Span, SpanProcessor

from tracing_app.conf import TracingConfig, get_config
from tracing_app.context.propagators import BAGGAGE_CONTEXT_KEY, current_context, nothing_to_extract, with_baggage

logger = logging.getLogger(__name__)

ENDUSER_ID = "enduser.id"
TENANT_ID = "tenant.id"
EMPTY_CONTEXT = Context()
# The parent of whatever runs inside an untraced request (health check, static file):
# valid, so children follow it, and not sampled, so they are dropped here and
# downstream. Log records show empty ids under it (logs.py).
UNTRACED_TRACE_ID = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF
UNTRACED_SPAN = trace.NonRecordingSpan(trace.SpanContext(
    trace_id=UNTRACED_TRACE_ID, span_id=0xFFFFFFFFFFFFFFFF, is_remote=False,
    trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT),
))
MAX_VALUE_LENGTH = 256


def user_context(request: Any) -> dict[str, str]:
    """The default resolver: ids only, never user names or e-mails.

    ``enduser.id`` is ``request.user.pk`` for an authenticated user. ``tenant.id`` is
    the first of ``request.tenant_id``, ``request.tenant.pk``, ``request.user.tenant_id``.
    """
    context: dict[str, str] = {}
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None:
        context[ENDUSER_ID] = str(user.pk)
    tenant = getattr(request, "tenant_id", None)
    if tenant is None:
        tenant = getattr(getattr(request, "tenant", None), "pk", None)
    if tenant is None and user is not None:
        tenant = getattr(user, "tenant_id", None)
    if tenant is not None:
        context[TENANT_ID] = str(tenant)
    return context


def business_context(context: Context | None = None) -> dict[str, str]:
    """The business context of the current request or task: the ``BAGGAGE_KEYS`` entries
    of the current baggage, e.g. ``{"enduser.id": "42", "tenant.id": "acme"}``."""
    entries = baggage.get_all(context)
    if not entries:
        return {}
    return {key: str(entries[key]) for key in get_config().baggage_keys if key in entries}


# -- resolving at the start of a request -------------------------------------------


@functools.lru_cache(maxsize=8)
def load_resolver(path: str) -> Callable[[Any], Mapping[str, Any]]:
    return import_string(path)


def resolve(request: Any, config: TracingConfig) -> dict[str, str]:
    """The resolver's entries, limited to ``BAGGAGE_KEYS``, as strings of bounded length."""
    if not config.baggage_resolver:
        return {}
    found = load_resolver(config.baggage_resolver)(request)
    if not found:
        return {}
    keys = config.baggage_keys
    return {key: str(value)[:MAX_VALUE_LENGTH] for key, value in found.items() if key in keys and value is not None}


# -- the trust boundary --------------------------------------------------------------


def policy_for(path: str, routes: tuple[tuple[str, str], ...], default: str) -> str:
    for prefix, policy in routes:
        if path.startswith(prefix):
            return policy
    return default


def incoming_context(carrier: Any, getter: Getter, policy: str,
                     own_keys: frozenset[str]) -> tuple[Context, list[trace.Link] | None]:
    """The parent context for a request's span, and the links of that span, under ``policy``."""
    if nothing_to_extract(carrier, getter):
        return EMPTY_CONTEXT, None
    extracted = propagate.extract(carrier, context=EMPTY_CONTEXT, getter=getter)
    if policy == "trust":
        return extracted, None
    if policy == "link":
        remote = trace.get_current_span(extracted).get_span_context()
        return EMPTY_CONTEXT, ([trace.Link(remote, {"tracing_app.link": "untrusted_parent"})]
                               if remote.is_valid else None)
    entries = baggage.get_all(extracted)
    if entries and not own_keys.isdisjoint(entries):
        extracted = with_baggage({k: v for k, v in entries.items() if k not in own_keys}, extracted)
    return extracted, None


# -- baggage onto spans --------------------------------------------------------------


class BaggageSpanProcessor(SpanProcessor):
    """Copies allowlisted baggage entries onto every span when it starts."""

    def __init__(self, keys: tuple[str, ...], hashed: tuple[str, ...] = (), hash_key: str = "") -> None:
        self.keys = tuple((key, key in hashed) for key in keys)
        self._hash_key = hash_key.encode()
        self.hash_value = functools.lru_cache(maxsize=1024)(self._hash_value)

    @classmethod
    def from_config(cls, config: TracingConfig) -> BaggageSpanProcessor | None:
        if not config.baggage_span_attributes:
            return None
        return cls(config.baggage_span_attributes, config.baggage_hashed, config.baggage_hash_key)

    def _hash_value(self, value: str) -> str:
        if self._hash_key:
            return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()[:16]
        return hashlib.sha256(value.encode()).hexdigest()[:16]

    def attributes(self, entries: Mapping[str, object]) -> dict[str, str]:
        found = {}
        for key, hashed in self.keys:
            value = entries.get(key)
            if value is not None:
                value = str(value)[:MAX_VALUE_LENGTH]
                found[key] = self.hash_value(value) if hashed else value  # value: MAX_VALUE_LENGTH at most
        return found

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # baggage.get_all(parent_context), read from the context directly: this runs for every span.
        entries = (current_context() if parent_context is None else parent_context).get(BAGGAGE_CONTEXT_KEY)
        if entries:
            attributes = self.attributes(entries)
            if attributes:
                span.set_attributes(attributes)

    # No on_end: the base class's does nothing, and FastTracer's Dispatch then calls none.

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
