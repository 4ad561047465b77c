"""POST /api/orders/ yields one connected trace across gunicorn, RabbitMQ, a Celery
prefork worker, the pricing gRPC server, the outbox relay, the notifications consumer
and PostgreSQL, exported as real OTLP bytes."""

import json

import pytest

from tracing_app.testing import Expect, assert_trace

GET_QUOTE = "shop.pricing.v1.Pricing/GetQuote"


def quote_call(caller: str, error: bool = False) -> Expect:
    """A pricing call from ``caller``: its CLIENT span, the server's span, the server's query."""
    return Expect(GET_QUOTE, kind="CLIENT", service=caller, error=error, children=[
        Expect(GET_QUOTE, kind="SERVER", service="shop-pricing", error=error, children=[
            Expect("SELECT pricing_price", kind="CLIENT", service="shop-pricing"),
        ]),
    ])


ORDER_TRACE = Expect("POST api/orders/", kind="SERVER", service="shop-web", children=[
    Expect("SELECT inventory_stock", kind="CLIENT", service="shop-web"),
    quote_call("shop-web"),
    Expect("INSERT orders_order", kind="CLIENT", service="shop-web"),
    Expect("INSERT tracing_app_outboxevent", kind="CLIENT", service="shop-web"),
    Expect("send inventory.reserve_stock", kind="PRODUCER", service="shop-web", children=[
        Expect("process inventory.reserve_stock", kind="CONSUMER", service="shop-worker", error=False, children=[
            Expect("SELECT orders_order", kind="CLIENT", service="shop-worker"),
            quote_call("shop-worker"),
            Expect("SELECT orders_order", kind="CLIENT", service="shop-worker"),
            Expect("SELECT inventory_stock", kind="CLIENT", service="shop-worker"),
            Expect("UPDATE inventory_stock", kind="CLIENT", service="shop-worker"),
            Expect("UPDATE orders_order", kind="CLIENT", service="shop-worker"),
        ]),
    ]),
    Expect("send order.created", kind="PRODUCER", service="shop-relay", children=[
        Expect("process order.created", kind="CONSUMER", service="shop-notifications", error=False, children=[
            Expect("SELECT notifications_notification", kind="CLIENT", service="shop-notifications"),
            Expect("INSERT notifications_notification", kind="CLIENT", service="shop-notifications"),
        ]),
    ]),
])


def trace_of(spans, name):
    return next(span.trace_id for span in spans if span.name == name)


@pytest.mark.parametrize("stack", ["default", "embedded", "redis"], indirect=True)
def test_order_is_one_trace_across_web_worker_pricing_relay_consumer_and_database(stack, otlp):
    stack.start_pricing()
    web = stack.start_web()
    stack.start_worker("-P", "prefork", "-c", "2")
    stack.start_consumer().wait_output("consuming from")  # the queue is bound before anything is published

    status, headers, body = web.request("POST", "/api/orders/", json.dumps({"sku": "widget", "quantity": 2}).encode())
    assert status == 201, body
    order = json.loads(body)
    spans = otlp.wait_for(lambda spans: any(s.name == "process inventory.reserve_stock" for s in spans)
                          and any(s.name == "POST api/orders/" for s in spans)
                          and sum(s.service == "shop-pricing" and s.kind == "SERVER" for s in spans) == 2)
    # The relay starts late on purpose: the event waited in the outbox, and the
    # Celery path's spans all come before the relay's in the tree.
    stack.start_relay()
    spans = otlp.wait_for(lambda spans: {"send order.created", "process order.created"} <= {s.name for s in spans})

    trace_id = trace_of(spans, "POST api/orders/")
    assert headers["traceresponse"].split("-")[1] == trace_id
    assert_trace([s for s in spans if s.trace_id == trace_id], ORDER_TRACE)
    assert order["total_cents"] == 2 * 1999
    assert stack.database.query("select status, total_cents from orders_order where id = %s", order["id"]) == [
        ("reserved", 2 * 1999)]
    notifications = stack.database.query("select order_id, kind from notifications_notification")
    assert notifications == [(order["id"], "order.created")]
    assert stack.database.query("select count(*) from tracing_app_outboxevent where published_at is null") == [(0,)]

    server = next(s for s in spans if s.name == "POST api/orders/")
    assert server.attributes["http.route"] == "api/orders/"
    assert server.attributes["http.response.status_code"] == 201
    insert = next(s for s in spans if s.name == "INSERT orders_order")
    assert insert.attributes["db.system.name"] == stack.database.system
    assert "?" in insert.attributes["db.query.text"] and "widget" not in insert.attributes["db.query.text"]
    relay_send = next(s for s in spans if s.name == "send order.created")
    assert relay_send.links == ((trace_id, server.span_id),), "the relay links to the span that wrote the event"
    # Each message span names the transport the message really went through.
    system = stack.broker.url.partition("://")[0].replace("amqp", "rabbitmq")
    messaging = [s for s in spans if s.kind in ("PRODUCER", "CONSUMER")]
    assert {s.attributes["messaging.system"] for s in messaging} == {system}
    routing_keys = {s.name: s.attributes.get("messaging.rabbitmq.destination.routing_key") for s in messaging}
    if system == "rabbitmq":
        assert routing_keys == {"send inventory.reserve_stock": stack.queue, "process inventory.reserve_stock": None,
                                "send order.created": "order.created", "process order.created": "order.created"}
    else:
        assert set(routing_keys.values()) == {None}, "the RabbitMQ routing key attribute only on RabbitMQ"
    assert relay_send.attributes["messaging.destination.name"] == stack.events_exchange
    assert relay_send.attributes["messaging.message.body.size"] > 0
    process = next(s for s in spans if s.name == "process order.created")
    assert process.attributes["messaging.message.id"] == relay_send.attributes["messaging.message.id"]
    assert not [s for s in spans if s.trace_id != trace_id], "no other traces (healthz and outbox polling are untraced)"


def test_incoming_traceparent_is_continued_and_health_check_untraced(stack, otlp):
    web = stack.start_web()
    parent_trace, parent_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    status, headers, _ = web.request("GET", "/api/orders/999/",
                                     headers={"traceparent": f"00-{parent_trace}-{parent_span}-01"})
    assert status == 404
    assert web.request("GET", "/healthz")[0] == 200
    spans = otlp.wait_for(lambda spans: any(s.name.startswith("GET api/orders/") for s in spans))
    server = next(s for s in spans if s.kind == "SERVER")
    assert server.name == "GET api/orders/<int:pk>/"
    assert (server.trace_id, server.parent_id) == (parent_trace, parent_span)
    assert headers["traceresponse"] == f"00-{parent_trace}-{server.span_id}-01"
    assert not [s for s in spans if s.name.endswith("healthz")]


def test_failing_task_marks_its_span_as_error(stack, otlp):
    """The worker runs an order whose row is gone: the task raises, its span is an error."""
    stack.start_worker("-P", "solo")
    # `shell` is housekeeping, untraced by default (UNTRACED_COMMANDS): these settings trace it.
    result = stack.manage("shell", "-c", (
        "from celery import current_app; current_app.send_task('inventory.reserve_stock', args=[424242])"
    ), DJANGO_SETTINGS_MODULE="tests.e2e.command_settings")
    assert result.returncode == 0, result.stderr
    spans = otlp.wait_for(lambda spans: any(s.kind == "CONSUMER" for s in spans))
    consumer = next(s for s in spans if s.kind == "CONSUMER")
    producer = next(s for s in spans if s.kind == "PRODUCER")
    assert consumer.error and "DoesNotExist" in consumer.status_message
    assert consumer.events and consumer.events[0][0] == "exception"
    assert consumer.parent_id == producer.span_id and consumer.trace_id == producer.trace_id
