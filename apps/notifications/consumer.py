"""The notifications service: consumes ``order.*`` events from the shop's topic exchange.

It runs in its own process (``python manage.py consume_events``) and talks to the
web process only through RabbitMQ. Tracing comes from ``tracing_app.consuming``.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from kombu import Exchange, Queue
from kombu.mixins import ConsumerMixin

from tracing_app import consuming

from .models import Notification

logger = logging.getLogger(__name__)


def events_exchange() -> Exchange:
    return Exchange(settings.EVENTS_EXCHANGE, type="topic", durable=True)


def notifications_queue() -> Queue:
    return Queue(settings.NOTIFICATIONS_QUEUE, events_exchange(), routing_key="order.*", durable=True)


def notify(event_id: str, routing_key: str, payload: Any) -> Notification:
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    order_id = payload.get("order_id")
    text = f"Order {order_id}: {routing_key.partition('.')[2] or routing_key}"
    notification, _ = Notification.objects.get_or_create(
        event_id=event_id, defaults={"kind": routing_key, "order_id": order_id, "text": text}
    )
    return notification


class EventConsumer(ConsumerMixin):
    """kombu's ConsumerMixin reconnects (and re-declares the queue) after the broker goes away."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def get_consumers(self, Consumer: Any, channel: Any) -> list:  # noqa: N803 (kombu's signature)
        return [Consumer(queues=[notifications_queue()], callbacks=[self.on_message], accept=["json"],
                         prefetch_count=10)]

    def on_connection_revived(self) -> None:
        logger.info("consume_events: connected to the broker")

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kwargs: Any) -> None:
        logger.info("consume_events: consuming from %s", settings.NOTIFICATIONS_QUEUE)

    def on_message(self, body: Any, message: Any) -> None:
        close_old_connections()
        routing_key = message.delivery_info.get("routing_key", "")
        event_id = message.properties.get("message_id") or str(uuid.uuid4())
        try:
            with consuming(message):
                payload = json.loads(body) if isinstance(body, (bytes, str)) else body
                notify(event_id, routing_key, payload)
        except Exception:
            # A message that cannot be handled is rejected (dead-lettered when the
            # queue has a dead-letter exchange), not redelivered forever.
            logger.exception("consume_events: could not handle message %s (%s)", event_id, routing_key)
            message.reject()
            return
        message.ack()
