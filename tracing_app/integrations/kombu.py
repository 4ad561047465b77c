"""Raw kombu messages (outside Celery) with the trace context in their AMQP headers.

Publishing::

    from tracing_app import publish

    with Connection(url) as conn, conn.Producer() as producer:
        publish(producer, {"order_id": 7}, exchange=events, routing_key="order.created")

``publish()`` starts a PRODUCER span ``send order.created`` that times the real
``producer.publish`` call and writes ``traceparent`` (and ``tracestate`` /
``baggage``) into the message's application headers; the caller's own headers are
copied, never changed.

Consuming, inside any kombu callback (``ConsumerMixin``, ``Consumer(callbacks=...)``)::

    from tracing_app import consuming

    def on_message(body, message):
        with consuming(message):
            handle(body)
        message.ack()

``consuming()`` starts a CONSUMER span ``process order.created``, a child of the
publisher's span. A message whose trace headers are missing or malformed (a bad
``traceparent``, a field type that is not text nor bytes, an oversized header) is
still handled: its span starts a new trace, and one warning is logged for it (never
quoting a header's value). The headers are read and written by
``tracing_app.context.carriers``, in every field type an AMQP publisher sends them as.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind

from tracing_app.context import privacy
from tracing_app.context.carriers import CARRIER, RABBITMQ, extract, messaging_system
from tracing_app.context.propagators import inject_context
from tracing_app.context.suppression import suppressed
from tracing_app.pipeline import provider
from tracing_app.safety import guarded
from tracing_app.semconv import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_BODY_SIZE,
    MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
    MESSAGING_SYSTEM,
)

logger = logging.getLogger(__name__)

def message_attributes(operation: str, exchange: str, routing_key: str, message_id: str | None,
                       body_size: int | None, system: str = RABBITMQ) -> dict[str, Any]:
    """The messaging attributes of one message; the routing key attribute only on RabbitMQ
    (the semantic conventions define it for RabbitMQ alone)."""
    attributes: dict[str, Any] = {
        MESSAGING_SYSTEM: system,
        MESSAGING_OPERATION_TYPE: operation,
        MESSAGING_OPERATION_NAME: operation,
        MESSAGING_DESTINATION_NAME: exchange or ("amq.default" if system == RABBITMQ else routing_key),
    }
    if system == RABBITMQ:
        attributes[MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY] = routing_key
    if message_id:
        attributes[MESSAGING_MESSAGE_ID] = str(message_id)
    if body_size is not None:
        attributes[MESSAGING_MESSAGE_BODY_SIZE] = body_size
    return attributes


def _name(exchange: Any) -> str:
    return str(getattr(exchange, "name", exchange) or "")


def publish(producer: Any, body: Any, *, exchange: Any = "", routing_key: str = "",
            headers: Mapping[str, Any] | None = None, message_id: str | None = None,
            parent: context.Context | None = None, links: list[trace.Link] | None = None,
            attributes: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """``producer.publish(body, ...)`` inside a PRODUCER span, with the trace context in the headers.

    ``parent`` is the context to continue (default: the current one); ``links``
    and ``attributes`` are added to the span. Other keyword arguments go to ``producer.publish``.
    The body size is known only for ``bytes``/``str`` bodies (kombu serializes others).
    """
    if message_id:
        kwargs["message_id"] = message_id
    message_headers = dict(headers or {})
    if suppressed():  # untraced(): no span, no context sent
        return producer.publish(body, exchange=exchange, routing_key=routing_key, headers=message_headers, **kwargs)
    # A failure of our own below: the message still goes, and a span already started still ends.
    span: trace.Span = trace.INVALID_SPAN
    token = None
    with guarded("tracing a kombu publish"):
        exchange_name = _name(exchange)
        size = len(body.encode() if isinstance(body, str) else body) if isinstance(body, (bytes, str)) else None
        span_attributes = message_attributes("send", exchange_name, routing_key, message_id, size,
                                             messaging_system(producer))
        span_attributes.update(attributes or {})
        span = provider.get_tracer().start_span(
            f"send {routing_key or exchange_name}", context=parent, kind=SpanKind.PRODUCER, links=links,
            attributes=span_attributes,
        )
        # Baggage comes from ``parent`` too, not only the span.
        span_context = trace.set_span_in_context(span, parent if parent is not None else context.get_current())
        token = context.attach(span_context)
        inject_context(message_headers, span_context, setter=CARRIER)
    # From here the span ends on every path, whatever the publish raises (KeyboardInterrupt included).
    with privacy.ending(span, token, "recording a failed kombu publish"):
        return producer.publish(body, exchange=exchange, routing_key=routing_key, headers=message_headers, **kwargs)


@contextlib.contextmanager
def consuming(message: Any, name: str | None = None) -> Iterator[trace.Span]:
    """A CONSUMER span around the handling of one kombu ``message``, current inside the block.

    The span continues the trace in the message's headers; without usable ones it
    starts a new trace and logs one warning. An exception from the block marks the
    span as an error and is re-raised: acknowledging or rejecting stays the caller's job.
    """
    span: trace.Span = trace.INVALID_SPAN
    token = None
    with guarded("tracing a kombu message"):
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
                                          messaging_system(message)),
        )
        # Baggage from the headers travels on with the span.
        token = context.attach(trace.set_span_in_context(span, parent))
    with privacy.ending(span, token, "recording a failed kombu message handler"):
        yield span
