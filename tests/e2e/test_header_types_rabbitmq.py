"""Trace headers published by another AMQP client (pika, which sends ``bytes`` as
byte-array fields the way the Java, .NET and Go clients send ``byte[]``), through
the real RabbitMQ, to a raw kombu consumer and to a real Celery worker."""

from __future__ import annotations

import json
import uuid

import pika
import pytest
from kombu import Connection, Queue

from tracing_app.integrations.kombu import consuming

from .stack import BROKER_URL

pytestmark = pytest.mark.services

TRACE_ID, PARENT_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def pika_publish(queue: str, body: bytes, headers: dict, **properties: object) -> None:
    # kombu writes the default vhost "/" as a trailing "//"; pika wants it quoted.
    url = BROKER_URL[:-1] + "%2F" if BROKER_URL.endswith("//") else BROKER_URL
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.basic_publish("", queue, body, pika.BasicProperties(headers=headers, **properties))


@pytest.fixture
def queue_name():
    name = f"header-types-{uuid.uuid4().hex[:10]}"
    yield name
    with Connection(BROKER_URL) as conn:
        conn.default_channel.queue_delete(name)


SENT_AS = {
    "byte arrays": {"traceparent": TRACEPARENT.encode(), "tracestate": b"vendor=opaque", "baggage": b"tenant=acme"},
    "field array of one byte array": {"traceparent": [TRACEPARENT.encode()], "tracestate": [b"a=1", "b=2"]},
}


@pytest.mark.parametrize("headers", SENT_AS.values(), ids=SENT_AS.keys())
def test_kombu_consumer_continues_a_trace_sent_by_pika_as_bytes(queue_name, captured_spans, headers):
    with Connection(BROKER_URL) as conn:
        Queue(queue_name)(conn.default_channel).declare()
        pika_publish(queue_name, b'{"order_id": 7}', headers, message_id="pika-1")
        message = Queue(queue_name)(conn.default_channel).get(no_ack=True)
        assert message is not None
        sent = message.headers["traceparent"]
        assert not isinstance(sent, str), f"arrived as {type(sent).__name__}: the test needs a byte array"
        with consuming(message, name="order.paid"):
            pass
    [span] = captured_spans.records()
    assert (span.trace_id, span.parent_id) == (TRACE_ID, PARENT_ID)
    assert span.attributes["messaging.message.id"] == "pika-1"


def test_celery_worker_continues_a_trace_sent_by_pika_as_bytes(stack, otlp):
    worker = stack.start_worker("-P", "solo")
    worker.wait_output("ready.")
    task_id = str(uuid.uuid4())
    headers = {"lang": "py", "task": "e2e.sleep", "id": task_id, "root_id": task_id, "parent_id": None,
               "group": None, "retries": 0, "eta": None, "expires": None, "argsrepr": "(0,)", "kwargsrepr": "{}",
               "origin": "pika", "traceparent": TRACEPARENT.encode(), "tracestate": b"vendor=opaque"}
    body = json.dumps([[0], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]).encode()
    pika_publish(stack.queue, body, headers, content_type="application/json", content_encoding="utf-8",
                 correlation_id=task_id)
    spans = otlp.wait_for(lambda spans: any(s.attributes.get("messaging.message.id") == task_id for s in spans))
    [run] = [s for s in spans if s.attributes.get("messaging.message.id") == task_id]
    assert run.name == "process e2e.sleep" and run.kind == "CONSUMER" and not run.error
    assert (run.trace_id, run.parent_id) == (TRACE_ID, PARENT_ID)
    assert "no usable trace context" not in worker.output()
