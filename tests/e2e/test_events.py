"""Raw kombu events: the notifications consumer (``manage.py consume_events``) in its own
process, fed over real RabbitMQ, traced through ``tracing_app.consuming``."""

from __future__ import annotations

import json
import time

import pytest
from kombu import Connection, Exchange

from tracing_app import get_tracer
from tracing_app.integrations.kombu import publish
from tracing_app.testing import Expect, assert_trace

from .proxy import TcpProxy
from .stack import BROKER_URL, DEADLINE, require_real_services

HANDLED = [
    Expect("SELECT notifications_notification", kind="CLIENT", service="shop-notifications"),
    Expect("INSERT notifications_notification", kind="CLIENT", service="shop-notifications"),
]
WARNING = "has no usable trace context"


@pytest.fixture(autouse=True)
def rabbitmq():
    require_real_services("raw AMQP headers and a broker restart")


def send_raw(stack, headers: dict | None, message_id: str, url: str = BROKER_URL) -> None:
    with Connection(url) as conn, conn.Producer() as producer:
        producer.publish(json.dumps({"order_id": 1}).encode(), exchange=Exchange(stack.events_exchange, "topic"),
                         routing_key="order.created", headers=headers, message_id=message_id,
                         content_type="application/json", content_encoding="utf-8")


def wait_for_notifications(stack, count: int, timeout: float = DEADLINE) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [row[0] for row in stack.database.query("select event_id from notifications_notification")]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_traced_event_is_a_child_of_its_publisher(stack, otlp, captured_spans):
    stack.start_consumer().wait_output("consuming from")
    with Connection(BROKER_URL) as conn, conn.Producer() as producer:
        with get_tracer().start_as_current_span("test") as root:
            publish(producer, b'{"order_id": 7}', exchange=Exchange(stack.events_exchange, "topic"),
                    routing_key="order.created", message_id="evt-7", content_type="application/json")
    trace_id = f"{root.get_span_context().trace_id:032x}"
    spans = otlp.wait_for(lambda spans: any(s.name == "process order.created" for s in spans))
    assert_trace(captured_spans.records() + [s for s in spans if s.trace_id == trace_id], Expect("test", children=[
        Expect("send order.created", kind="PRODUCER", attributes={
            "messaging.system": "rabbitmq", "messaging.destination.name": stack.events_exchange,
            "messaging.rabbitmq.destination.routing_key": "order.created", "messaging.message.id": "evt-7",
            "messaging.message.body.size": 15,
        }, children=[Expect("process order.created", kind="CONSUMER", service="shop-notifications", attributes={
            "messaging.system": "rabbitmq", "messaging.operation.type": "process",
            "messaging.message.id": "evt-7", "messaging.message.body.size": 15,
        }, children=HANDLED)]),
    ]))
    assert wait_for_notifications(stack, 1) == ["evt-7"]


def test_missing_or_malformed_trace_headers_start_a_new_trace_and_lose_nothing(stack, otlp):
    consumer = stack.start_consumer()
    consumer.wait_output("consuming from")
    valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    bad = {
        "missing": None,
        "bad-traceparent": {"traceparent": "00-not-a-trace-01"},
        "zero-trace-id": {"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"},
        "number": {"traceparent": 12345},
        # A field array is one value per line (a one-line array is read: tests/test_header_types.py);
        # two lines are two traceparents, invalid as two HTTP traceparent headers are.
        "two-line-array": {"traceparent": [valid, valid]},
        "array-of-arrays": {"traceparent": [[valid]]},
        "table": {"traceparent": {"nested": valid}},
        "oversized": {"traceparent": valid, "tracestate": "k=" + "v" * 20000},
    }
    for message_id, headers in bad.items():
        send_raw(stack, headers, message_id)
    assert sorted(wait_for_notifications(stack, len(bad))) == sorted(bad), "every message was handled"
    spans = otlp.wait_for(lambda spans: len([s for s in spans if s.name == "process order.created"]) >= len(bad))
    for message_id in bad:
        process = next(s for s in spans if s.attributes.get("messaging.message.id") == message_id)
        assert process.parent_id == "" and process.trace_id != valid.split("-")[1], message_id
        assert_trace([s for s in spans if s.trace_id == process.trace_id],
                     Expect("process order.created", kind="CONSUMER", error=False, children=HANDLED))
    assert len({s.trace_id for s in spans}) == len(bad), "a new trace each"
    warnings = [line for line in consumer.output().splitlines() if WARNING in line]
    assert len(warnings) == len(bad), warnings
    assert all(any(message_id in line for line in warnings) for message_id in bad)
    assert consumer.popen.poll() is None, "the consumer keeps going"


def test_consumer_reconnects_after_the_broker_restarts(stack, otlp):
    """Between the consumer and RabbitMQ sits a proxy; stopping it is, for the consumer, a broker restart."""
    host, _, port = BROKER_URL.rpartition("@")[2].partition("/")[0].partition(":")
    proxy = TcpProxy((host, int(port or 5672))).start()
    try:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"
        consumer = stack.start_consumer(EVENTS_BROKER_URL=url)
        consumer.wait_output("consuming from")
        send_raw(stack, None, "before")
        assert wait_for_notifications(stack, 1) == ["before"]

        proxy.stop()  # the broker goes away: the connection drops, reconnecting is refused
        consumer.wait_output("Connection to broker lost")
        send_raw(stack, None, "while-down")  # queued in the durable queue meanwhile
        proxy.start()

        assert sorted(wait_for_notifications(stack, 2)) == ["before", "while-down"]
        assert consumer.output().count("consuming from") == 2, consumer.output()
        assert consumer.popen.poll() is None
    finally:
        proxy.stop()

