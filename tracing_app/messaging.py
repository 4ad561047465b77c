"""Raw kombu messages (outside Celery) with the trace context in their AMQP headers.

Publishing::

    from tracing_app.messaging import publish

    with Connection(url) as conn, conn.Producer() as producer:
        publish(producer, {"order_id": 7}, exchange=events, routing_key="order.created")

``publish()`` starts a PRODUCER span ``send order.created`` that times the real
``producer.publish`` call and writes ``traceparent`` (and ``tracestate`` /
``baggage``) into the message's application headers; the caller's own headers are
copied, never changed.

Consuming, inside any kombu callback (``ConsumerMixin``, ``Consumer(callbacks=...)``)::

    from tracing_app.messaging import consuming

    def on_message(body, message):
        with consuming(message):
            handle(body)
        message.ack()

``consuming()`` starts a CONSUMER span ``process order.created``, a child of the
publisher's span. A message whose trace headers are missing or malformed (a bad
``traceparent``, a non-string value, an oversized header) is still handled: its
span starts a new trace, and one warning is logged for it.

OpenTelemetry has no kombu instrumentation to reuse (``opentelemetry-instrumentation-celery``
only covers Celery tasks); ``KombuHeadersCarrier`` is the small piece it lacks.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import SpanKind

from . import privacy, provider
from .propagation import inject_context

logger = logging.getLogger(__name__)

ATTR_SYSTEM = "messaging.system"
ATTR_OPERATION_TYPE = "messaging.operation.type"
ATTR_OPERATION_NAME = "messaging.operation.name"
ATTR_DESTINATION = "messaging.destination.name"
ATTR_ROUTING_KEY = "messaging.rabbitmq.destination.routing_key"
ATTR_MESSAGE_ID = "messaging.message.id"
ATTR_BODY_SIZE = "messaging.message.body.size"
ATTR_ERROR_TYPE = "error.type"
SYSTEM = "rabbitmq"

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


def messaging_system(channel: Any) -> str:
    """``rabbitmq`` for AMQP connections, else kombu's transport name (``filesystem``, ``memory``, ``redis``)."""
    try:
        driver = channel.connection.client.transport.driver_type
    except AttributeError:
        return SYSTEM
    return SYSTEM if driver in ("amqp", None) else str(driver)


def message_attributes(operation: str, exchange: str, routing_key: str, message_id: str | None,
                       body_size: int | None, system: str = SYSTEM) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        ATTR_SYSTEM: system,
        ATTR_OPERATION_TYPE: operation,
        ATTR_OPERATION_NAME: operation,
        ATTR_DESTINATION: exchange or "amq.default",
        ATTR_ROUTING_KEY: routing_key,
    }
    if message_id:
        attributes[ATTR_MESSAGE_ID] = str(message_id)
    if body_size is not None:
        attributes[ATTR_BODY_SIZE] = body_size
    return attributes


def _name(exchange: Any) -> str:
    return str(getattr(exchange, "name", exchange) or "")


def _record_error(span: trace.Span, exc: BaseException) -> None:
    # The exception's message only with RECORD_EXCEPTION_MESSAGES (privacy.py).
    privacy.record_error(span, exc)


def publish(producer: Any, body: Any, *, exchange: Any = "", routing_key: str = "",
            headers: Mapping[str, Any] | None = None, message_id: str | None = None,
            parent: context.Context | None = None, links: list[trace.Link] | None = None,
            attributes: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """``producer.publish(body, ...)`` inside a PRODUCER span, with the trace context in the headers.

    ``parent`` is the context to continue (default: the current one); ``links``
    and ``attributes`` are added to the span. Other keyword arguments go to ``producer.publish``.
    The body size is known only for ``bytes``/``str`` bodies (kombu serializes others).
    """
    exchange_name = _name(exchange)
    size = len(body.encode() if isinstance(body, str) else body) if isinstance(body, (bytes, str)) else None
    if message_id:
        kwargs["message_id"] = message_id
    span_attributes = message_attributes("send", exchange_name, routing_key, message_id, size,
                                         messaging_system(getattr(producer, "channel", None)))
    span_attributes.update(attributes or {})
    span = provider.get_tracer().start_span(
        f"send {routing_key or exchange_name}", context=parent, kind=SpanKind.PRODUCER, links=links,
        attributes=span_attributes,
    )
    message_headers = dict(headers or {})
    # Baggage comes from ``parent`` too, not only the span.
    span_context = trace.set_span_in_context(span, parent if parent is not None else context.get_current())
    inject_context(message_headers, span_context, setter=CARRIER)
    token = context.attach(span_context)
    try:
        return producer.publish(body, exchange=exchange, routing_key=routing_key, headers=message_headers, **kwargs)
    except Exception as exc:
        _record_error(span, exc)
        raise
    finally:
        context.detach(token)
        span.end()


@contextlib.contextmanager
def consuming(message: Any, name: str | None = None) -> Iterator[trace.Span]:
    """A CONSUMER span around the handling of one kombu ``message``, current inside the block.

    The span continues the trace in the message's headers; without usable ones it
    starts a new trace and logs one warning. An exception from the block marks the
    span as an error and is re-raised: acknowledging or rejecting stays the caller's job.
    """
    headers = getattr(message, "headers", None) or {}
    delivery = getattr(message, "delivery_info", None) or {}
    properties = getattr(message, "properties", None) or {}
    routing_key = str(delivery.get("routing_key") or "")
    parent, problem = extract(headers)
    message_id = properties.get("message_id")
    if problem:
        logger.warning("tracing_app: message %s (%s) has no usable trace context: %s; starting a new trace",
                       message_id or "without id", routing_key, problem)
    body = getattr(message, "body", None)
    span = provider.get_tracer().start_span(
        f"process {name or routing_key or 'message'}", context=parent, kind=SpanKind.CONSUMER,
        attributes=message_attributes("process", str(delivery.get("exchange") or ""), routing_key, message_id,
                                      len(body) if isinstance(body, (bytes, str)) else None,
                                      messaging_system(getattr(message, "channel", None))),
    )
    # Baggage from the headers travels on with the span.
    token = context.attach(trace.set_span_in_context(span, parent))
    try:
        yield span
    except BaseException as exc:
        _record_error(span, exc)
        raise
    finally:
        context.detach(token)
        span.end()
