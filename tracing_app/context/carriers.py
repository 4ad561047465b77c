"""Carriers: where trace context travels in a message. ``KombuHeadersCarrier`` reads
and writes it in a kombu message's application headers (AMQP headers on RabbitMQ,
the message's ``headers`` field on other transports); ``extract()`` also says why a
message carries no usable context.

OpenTelemetry has no kombu instrumentation to reuse (``opentelemetry-instrumentation-celery``
only covers Celery tasks); this carrier is the small piece it lacks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter

TRACEPARENT = "traceparent"
# W3C limits: tracestate has at most 32 members of at most 256 characters
# (about 8 KB), baggage at most 8192 bytes. Longer values are an attack or a bug.
MAX_HEADER_CHARS = 8192
TRACEPARENT_FORMAT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class KombuHeadersCarrier(Getter[Mapping[str, Any]], Setter[dict]):
    """Reads and writes propagation fields in a kombu message's ``headers`` dict.

    Use it with any OpenTelemetry propagator::

        propagate.inject(headers, setter=CARRIER)
        ctx = propagate.extract(message.headers, getter=CARRIER)

    Values that are not strings (AMQP allows numbers, tables, bytes) or longer
    than ``MAX_HEADER_CHARS`` are not read: the propagator sees them as absent.
    """

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key) if isinstance(carrier, Mapping) else None
        if isinstance(value, str) and len(value) <= MAX_HEADER_CHARS:
            return [value]
        return None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [key for key in carrier if isinstance(key, str)] if isinstance(carrier, Mapping) else []

    def set(self, carrier: dict, key: str, value: str) -> None:
        carrier[key] = value


CARRIER = KombuHeadersCarrier()


def extract(headers: Any) -> tuple[context.Context, str]:
    """(the context in ``headers``, "") or (an empty context, why ``headers`` carry no usable one)."""
    if not isinstance(headers, Mapping) or TRACEPARENT not in headers:
        return context.Context(), "no traceparent header"
    for key in propagate.get_global_textmap().fields:
        if key not in headers:
            continue
        value = headers[key]
        if not isinstance(value, str):
            return context.Context(), f"header {key!r} is a {type(value).__name__}, not a string"
        if len(value) > MAX_HEADER_CHARS:
            return context.Context(), f"header {key!r} is {len(value)} characters long (at most {MAX_HEADER_CHARS})"
    traceparent = headers[TRACEPARENT].strip().lower()
    if not TRACEPARENT_FORMAT.match(traceparent) or traceparent.startswith("ff"):
        return context.Context(), f"traceparent {headers[TRACEPARENT][:80]!r} is malformed"
    found = propagate.extract(headers, getter=CARRIER, context=context.Context())
    if not trace.get_current_span(found).get_span_context().is_valid:
        return context.Context(), f"traceparent {headers[TRACEPARENT][:80]!r} is not a valid span context"
    return found, ""


def header_problem(headers: Any) -> str:
    """Why ``headers`` carry no usable trace context, or "" when they do."""
    return extract(headers)[1]
