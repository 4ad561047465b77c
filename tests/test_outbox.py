"""The transactional outbox against real PostgreSQL and RabbitMQ, in this process."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from django.db import transaction
from kombu import Connection, Exchange, Queue

from tracing_app import get_tracer
from tracing_app.models import OutboxEvent
from tracing_app.outbox.relay import OutboxError, relay_pending, write_event
from tracing_app.testing import Expect, assert_trace

from .e2e.stack import BROKER_URL, backends

# RabbitMQ when reachable, else kombu's in-memory transport (same exchange routing, in this process).
EVENTS_URL = BROKER_URL if backends().broker == "rabbitmq" else "memory://"
EVENTS_SYSTEM = "rabbitmq" if backends().broker == "rabbitmq" else "memory"  # messaging.system follows the transport


@pytest.fixture
def events() -> Iterator[tuple[Connection, str, Queue]]:
    """A connection, an exchange name and a queue bound to it, all of this test's own."""
    name = f"test-outbox-{uuid.uuid4().hex[:10]}"
    with Connection(EVENTS_URL, transport_options={"confirm_publish": True}) as conn:
        queue = Queue(name, Exchange(name, "topic", durable=True), routing_key="#", auto_delete=False)
        queue(conn.default_channel).declare()
        try:
            yield conn, name, queue
        finally:
            channel = conn.default_channel
            channel.queue_delete(name)
            channel.exchange_delete(name)


def received(conn: Connection, queue: Queue) -> list:
    messages = []
    bound = queue(conn.default_channel)
    while (message := bound.get(no_ack=True)) is not None:
        messages.append(message)
    return messages


@pytest.mark.django_db(transaction=True)
def test_event_is_published_in_the_trace_of_the_span_that_wrote_it(events, captured_spans):
    conn, exchange, queue = events
    with get_tracer().start_as_current_span("POST api/orders/") as request_span, transaction.atomic():
        write_event("order.created", {"order_id": 7}, exchange=exchange, headers={"x-tenant": "acme"})
    assert relay_pending(conn) == 1
    assert relay_pending(conn) == 0, "published once"

    spans = captured_spans.records()
    assert_trace(spans, Expect("POST api/orders/", children=[
        Expect("INSERT tracing_app_outboxevent", kind="CLIENT"),
        Expect("send order.created", kind="PRODUCER", attributes={
            "messaging.system": EVENTS_SYSTEM, "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": "order.created",
        }),
    ]))
    writer = f"{request_span.get_span_context().span_id:016x}"
    send = next(s for s in spans if s.kind == "PRODUCER")
    assert send.links == ((send.trace_id, writer),)
    [message] = received(conn, queue)
    event = OutboxEvent.objects.get()
    assert json.loads(message.body) == {"order_id": 7}
    assert message.properties["message_id"] == send.attributes["messaging.message.id"] == str(event.message_id)
    assert message.headers["x-tenant"] == "acme"
    assert message.headers["traceparent"].startswith(f"00-{send.trace_id}-{send.span_id}-")
    assert event.published_at is not None


@pytest.mark.django_db(transaction=True)
def test_event_of_a_rolled_back_transaction_is_never_published(events, captured_spans):
    conn, exchange, queue = events
    with pytest.raises(RuntimeError), transaction.atomic():
        write_event("order.created", {"order_id": 8}, exchange=exchange)
        raise RuntimeError("the order could not be saved")
    assert relay_pending(conn) == 0
    assert received(conn, queue) == []
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_write_outside_a_transaction_is_refused():
    with pytest.raises(OutboxError, match="inside transaction.atomic"):
        write_event("order.created", {"order_id": 9}, exchange="shop.events")
    with pytest.raises(TypeError), transaction.atomic():
        write_event("order.created", {"when": object()}, exchange="shop.events")
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_event_without_trace_context_is_published_in_a_new_trace(events, captured_spans):
    conn, exchange, queue = events
    with transaction.atomic():
        write_event("order.created", {"order_id": 10}, exchange=exchange)
    OutboxEvent.objects.update(trace_context={"traceparent": "garbage"})
    assert relay_pending(conn) == 1
    send = next(s for s in captured_spans.records() if s.kind == "PRODUCER")
    assert send.parent_id == "" and send.links == ()
    assert len(received(conn, queue)) == 1
