"""A transactional outbox whose events keep the trace of the request that wrote them.

Write the event in the same database transaction as the business change::

    from tracing_app.outbox import write_event

    with transaction.atomic():
        order = Order.objects.create(...)
        write_event("order.created", {"order_id": order.pk}, exchange="shop.events")

The row stores the current trace context (``traceparent``/``tracestate``/``baggage``).
When the transaction rolls back, the event is gone with it and is never published.
``python manage.py relay_outbox`` publishes pending events to RabbitMQ: it locks a
batch with ``SELECT ... FOR UPDATE SKIP LOCKED`` (so two relays never take the same
event), publishes each with publisher confirms, and marks them published in the same
transaction. Each publish is a PRODUCER span that continues the writer's trace (its
parent is the span that wrote the event) and links to it.

Delivery is at least once: a relay that dies after a publish and before its commit
publishes that event again. Consumers deduplicate by ``message_id`` (the event's uuid).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from django.db import close_old_connections, transaction
from django.utils import timezone
from opentelemetry import trace

from tracing_app.context.carriers import CARRIER, extract
from tracing_app.context.propagators import inject_context
from tracing_app.context.suppression import untraced
from tracing_app.integrations.kombu import publish
from tracing_app.models import OutboxEvent
from tracing_app.semconv import MESSAGING_LINK_SOURCE, TRACING_APP_OUTBOX_EVENT_ID, TRACING_APP_OUTBOX_WAIT_MS

logger = logging.getLogger(__name__)

DEFAULT_EXCHANGE_TYPE = "topic"


class OutboxError(RuntimeError):
    """``write_event`` was used in a way that would lose the transactional guarantee."""


def write_event(routing_key: str, payload: Any, *, exchange: str, headers: Mapping[str, str] | None = None,
                using: str = "default") -> OutboxEvent:
    """Store an event to publish after the surrounding transaction commits.

    Must be called inside ``transaction.atomic()`` on database ``using``: outside
    one the event would be committed on its own, apart from the business change.
    """
    if not transaction.get_connection(using).in_atomic_block:
        raise OutboxError("write_event() must be called inside transaction.atomic(), "
                          "in the transaction that makes the business change")
    if not isinstance(routing_key, str) or not routing_key or not isinstance(exchange, str):
        raise OutboxError(f"routing_key must be a non-empty string and exchange a string; got "
                          f"{routing_key!r}, {exchange!r}")
    json.dumps(payload)  # fail here, in the request, not later in the relay
    trace_context: dict[str, str] = {}
    inject_context(trace_context, setter=CARRIER)
    return OutboxEvent.objects.using(using).create(
        exchange=exchange, routing_key=routing_key, payload=payload, headers=dict(headers or {}),
        trace_context=trace_context,
    )


def _publish_event(producer: Any, event: OutboxEvent, exchange: Any) -> None:
    writer, _ = extract(event.trace_context or {})  # none or unusable: a new trace
    writer_span = trace.get_current_span(writer).get_span_context()
    links = [trace.Link(writer_span, {MESSAGING_LINK_SOURCE: "outbox.write"})] if writer_span.is_valid else None
    waited = (timezone.now() - event.created_at).total_seconds() * 1000 if event.created_at else 0.0
    publish(
        producer, json.dumps(event.payload).encode(), exchange=exchange, routing_key=event.routing_key,
        headers=event.headers, message_id=str(event.message_id), parent=writer, links=links,
        attributes={TRACING_APP_OUTBOX_EVENT_ID: event.pk, TRACING_APP_OUTBOX_WAIT_MS: round(waited, 3)},
        content_type="application/json", content_encoding="utf-8", delivery_mode=2, declare=[exchange],
    )


def relay_pending(broker: Any, batch_size: int = 100, exchange_type: str = DEFAULT_EXCHANGE_TYPE,
                  using: str = "default") -> int:
    """Publish up to ``batch_size`` pending events over the kombu connection ``broker``.

    Returns how many were published. A broker error rolls the batch back: those
    events stay pending (some may have been published: at least once).
    """
    from kombu import Exchange

    with transaction.atomic(using=using):
        with untraced():
            events = list(OutboxEvent.objects.using(using).select_for_update(skip_locked=True)
                          .filter(published_at__isnull=True).order_by("id")[:batch_size])
        if not events:
            return 0
        with broker.Producer() as producer:
            for event in events:
                exchange = Exchange(event.exchange, type=exchange_type, durable=True)
                _publish_event(producer, event, exchange)
        with untraced():
            OutboxEvent.objects.using(using).filter(pk__in=[e.pk for e in events]).update(
                published_at=timezone.now())
    return len(events)


def run_relay(broker_url: str, *, interval: float = 0.5, batch_size: int = 100,
              exchange_type: str = DEFAULT_EXCHANGE_TYPE, once: bool = False,
              stop: threading.Event | None = None, transport_options: Mapping[str, Any] | None = None) -> int:
    """Relay until ``stop`` is set (or one pass with ``once``). Survives broker and database outages."""
    from kombu import Connection

    stop = stop or threading.Event()
    total = 0
    # Publisher confirms: an event is marked published only once the broker has it.
    connection = Connection(broker_url, transport_options={**(transport_options or {}), "confirm_publish": True})
    try:
        while not stop.is_set():
            try:
                connection.ensure_connection(max_retries=1)
                published = relay_pending(connection, batch_size, exchange_type)
                total += published
            except connection.connection_errors + connection.channel_errors as exc:
                logger.warning("outbox relay: broker unavailable (%s); retrying", exc)
                connection.close()
                connection = connection.clone()
                published = 0
            except Exception:
                logger.exception("outbox relay: a batch failed; it stays pending")
                close_old_connections()
                published = 0
            if once and not published:
                break
            if published < batch_size:
                stop.wait(interval)
    finally:
        connection.close()
    return total

