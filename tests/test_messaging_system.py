"""``messaging.system`` (and the RabbitMQ-only routing key attribute) follow the
transport a message really goes through: Celery and raw kombu over
RabbitMQ, Redis and kombu's memory transport. Redis is the real server, in a
database number and key prefix of this test's own."""

from __future__ import annotations

import random
import time
import uuid

import pytest
from celery import Celery
from kombu import Connection, Queue

from tracing_app import get_tracer
from tracing_app.context.carriers import messaging_system
from tracing_app.integrations.kombu import consuming, publish
from tracing_app.testing import Expect, assert_trace

from .e2e.stack import BROKER_URL, REDIS_URL, require_real_services, require_redis

ROUTING_KEY = "messaging.rabbitmq.destination.routing_key"


@pytest.fixture
def redis_url():
    """A Redis URL with a database of this test's own; every key under its prefix is removed after."""
    require_redis("kombu and Celery over Redis")
    import redis

    url = f"{REDIS_URL}/{random.randint(1, 15)}"
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    yield url, prefix
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.parametrize("url, system", [
    ("amqp://guest:guest@127.0.0.1:5672//", "rabbitmq"),
    ("pyamqp://guest:guest@127.0.0.1:5672//", "rabbitmq"),
    ("redis://127.0.0.1:6379/3", "redis"),
    ("rediss://127.0.0.1:6379/3", "redis"),
    ("memory://", "memory"),
    ("filesystem://", "filesystem"),
])
def test_messaging_system_of_each_transport_without_connecting(url, system):
    connection = Connection(url)
    assert messaging_system(connection) == system
    assert messaging_system(connection.Producer(auto_declare=False)) == system
    assert messaging_system(None) == "rabbitmq", "unknown: the AMQP default"


def roundtrip(url: str, prefix: str, queue: str, captured_spans) -> None:
    """Publish with tracing_app.publish, consume with consuming(), on ``url``."""
    options = {"global_keyprefix": prefix} if prefix else {}
    with Connection(url, transport_options=options) as conn:
        bound = Queue(queue, routing_key=queue)(conn.default_channel)
        bound.declare()
        with get_tracer().start_as_current_span("request"), conn.Producer() as producer:
            publish(producer, b'{"order_id": 7}', routing_key=queue, message_id="m-1")
        deadline = time.monotonic() + 30
        while (message := bound.get(no_ack=True)) is None:
            assert time.monotonic() < deadline, "the message did not arrive"
            time.sleep(0.05)
        with consuming(message):
            pass
        if not prefix:
            bound.delete()


def test_raw_kombu_over_redis_is_one_trace_with_redis_attributes(redis_url, captured_spans):
    url, prefix = redis_url
    queue = f"{prefix}orders"
    roundtrip(url, prefix, queue, captured_spans)
    redis_attributes = {"messaging.system": "redis", "messaging.destination.name": queue, "messaging.message.id": "m-1"}
    assert_trace(captured_spans.records(), Expect("request", children=[
        Expect(f"send {queue}", kind="PRODUCER", attributes=redis_attributes, children=[
            Expect(f"process {queue}", kind="CONSUMER", attributes=redis_attributes),
        ]),
    ]))
    assert not [s for s in captured_spans.records() if ROUTING_KEY in s.attributes]


def test_raw_kombu_over_rabbitmq_keeps_the_rabbitmq_attributes(captured_spans):
    require_real_services("kombu over RabbitMQ")
    queue = f"test-system-{uuid.uuid4().hex[:10]}"
    roundtrip(BROKER_URL, "", queue, captured_spans)
    rabbit = {"messaging.system": "rabbitmq", "messaging.destination.name": "amq.default", ROUTING_KEY: queue}
    assert_trace(captured_spans.records(), Expect("request", children=[
        Expect(f"send {queue}", kind="PRODUCER", attributes=rabbit, children=[
            Expect(f"process {queue}", kind="CONSUMER", attributes=rabbit),
        ]),
    ]))


def test_celery_publish_over_redis_names_redis_and_no_routing_key(redis_url, captured_spans):
    url, prefix = redis_url
    app = Celery("over-redis", broker=url, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    try:
        with get_tracer().start_as_current_span("request"):
            app.send_task("billing.charge", queue=f"{prefix}billing")
    finally:
        app.close()
    [send] = [s for s in captured_spans.records() if s.kind == "PRODUCER"]
    assert send.attributes["messaging.system"] == "redis"
    assert send.attributes["messaging.destination.name"] == f"{prefix}billing"
    assert ROUTING_KEY not in send.attributes


def test_celery_publish_and_run_over_memory_name_memory(captured_spans):
    app = Celery("over-memory", broker="memory://", set_as_current=False)

    @app.task(name="memory.add")
    def add(x, y):
        return x + y

    try:
        with get_tracer().start_as_current_span("request"):
            add.apply_async((1, 2))
            add.apply((1, 2))
    finally:
        app.close()
    systems = {(s.kind, s.attributes["messaging.system"]) for s in captured_spans.records() if s.kind != "INTERNAL"}
    assert systems == {("PRODUCER", "memory"), ("CONSUMER", "memory")}
    assert not [s for s in captured_spans.records() if ROUTING_KEY in s.attributes]
