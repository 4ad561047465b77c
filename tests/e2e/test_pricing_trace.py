"""Synchronous hops in the order trace: the pricing gRPC server as a real process on
loopback (its own service name, its own provider), its failures seen from both
sides, and the worker's webhook call carrying the trace to another HTTP service."""

import json
import re
import subprocess
import sys

import grpc
import psycopg
import pytest

from tracing_app.testing import Expect, assert_trace

from .stack import DEADLINE, ROOT, Recorder, free_port
from .test_order_trace import GET_QUOTE, quote_call

ORDER = json.dumps({"sku": "widget", "quantity": 1}).encode()


def pricing_servers(spans) -> int:
    return sum(s.service == "shop-pricing" and s.kind == "SERVER" for s in spans)


def the(spans, name, service):
    [span] = [s for s in spans if s.name == name and s.service == service]
    return span


def worker_path(*extra: Expect) -> Expect:
    return Expect("send inventory.reserve_stock", kind="PRODUCER", service="shop-web", children=[
        Expect("process inventory.reserve_stock", kind="CONSUMER", service="shop-worker", error=False, children=[
            Expect("SELECT orders_order", kind="CLIENT", service="shop-worker"),
            quote_call("shop-worker"),
            Expect("SELECT orders_order", kind="CLIENT", service="shop-worker"),
            Expect("SELECT inventory_stock", kind="CLIENT", service="shop-worker"),
            Expect("UPDATE inventory_stock", kind="CLIENT", service="shop-worker"),
            Expect("UPDATE orders_order", kind="CLIENT", service="shop-worker"),
            *extra,
        ]),
    ])


def test_unknown_sku_is_not_found_on_client_and_server(stack, otlp):
    stack.database.query("insert into inventory_stock (sku, quantity) values ('gizmo', 5) returning id")
    stack.start_pricing()
    web = stack.start_web()

    status, _, body = web.request("POST", "/api/orders/", json.dumps({"sku": "gizmo", "quantity": 1}).encode())
    assert (status, json.loads(body)) == (400, {"error": "sku 'gizmo' has no price"})

    spans = otlp.wait_for(lambda spans: pricing_servers(spans) == 1 and any(s.kind == "SERVER" and
                                                                            s.service == "shop-web" for s in spans))
    assert_trace(spans, Expect("POST api/orders/", kind="SERVER", service="shop-web", error=False, children=[
        Expect("SELECT inventory_stock", kind="CLIENT", service="shop-web"),
        quote_call("shop-web", error=True),
    ]))
    for span in (the(spans, GET_QUOTE, "shop-web"), the(spans, GET_QUOTE, "shop-pricing")):
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
        assert span.status_message == "NOT_FOUND", "the details (with the sku) are not recorded by default"
    assert stack.database.query("select count(*) from orders_order") == [(0,)]


@pytest.mark.services  # LOCK TABLE on the real PostgreSQL holds the pricing query past the deadline
def test_deadline_exceeded_on_client_and_server_and_the_worker_prices_the_order(stack, otlp):
    stack.start_pricing()
    web = stack.start_web(PRICING_TIMEOUT="0.5")
    stack.start_worker("-P", "solo", PRICING_TIMEOUT="60")

    # The price table is locked: the pricing server's query waits past the web's deadline.
    with psycopg.connect(stack.database.url) as lock:
        lock.execute("LOCK TABLE pricing_price IN ACCESS EXCLUSIVE MODE")
        status, _, body = web.request("POST", "/api/orders/", ORDER)
        lock.rollback()
    assert status == 201, body
    order = json.loads(body)
    assert order["total_cents"] is None, "taken with its price pending"

    spans = otlp.wait_for(lambda spans: pricing_servers(spans) == 2
                          and any(s.name == "process inventory.reserve_stock" for s in spans)
                          and any(s.name == "POST api/orders/" for s in spans))
    assert_trace(spans, Expect("POST api/orders/", kind="SERVER", service="shop-web", error=False, children=[
        Expect("SELECT inventory_stock", kind="CLIENT", service="shop-web"),
        quote_call("shop-web", error=True),
        Expect("INSERT orders_order", kind="CLIENT", service="shop-web"),
        Expect("INSERT tracing_app_outboxevent", kind="CLIENT", service="shop-web"),  # relay not running
        worker_path(),
    ]))
    web_call = the(spans, GET_QUOTE, "shop-web")
    server_call = next(s for s in spans if s.parent_id == web_call.span_id)
    for span in (web_call, server_call):
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert stack.database.query("select status, total_cents from orders_order where id = %s", order["id"]) == [
        ("reserved", 1999)]


def test_pricing_down_order_is_taken_and_priced_once_pricing_is_back(stack, otlp):
    web = stack.start_web()
    status, _, body = web.request("POST", "/api/orders/", ORDER)
    assert status == 201, body
    order = json.loads(body)
    assert order["total_cents"] is None

    stack.start_pricing()
    stack.start_worker("-P", "solo")
    spans = otlp.wait_for(lambda spans: pricing_servers(spans) == 1
                          and any(s.name == "process inventory.reserve_stock" for s in spans)
                          and any(s.name == "POST api/orders/" for s in spans))
    assert_trace(spans, Expect("POST api/orders/", kind="SERVER", service="shop-web", error=False, children=[
        Expect("SELECT inventory_stock", kind="CLIENT", service="shop-web"),
        Expect(GET_QUOTE, kind="CLIENT", service="shop-web", error=True),
        Expect("INSERT orders_order", kind="CLIENT", service="shop-web"),
        Expect("INSERT tracing_app_outboxevent", kind="CLIENT", service="shop-web"),  # relay not running
        worker_path(),
    ]))
    assert the(spans, GET_QUOTE, "shop-web").attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert stack.database.query("select status, total_cents from orders_order where id = %s", order["id"]) == [
        ("reserved", 1999)]


def test_worker_webhook_call_carries_the_order_trace(stack, otlp):
    partner = Recorder()
    try:
        stack.start_pricing()
        web = stack.start_web()
        stack.start_worker("-P", "solo", ORDER_WEBHOOK_URL=partner.url)
        status, _, body = web.request("POST", "/api/orders/", ORDER)
        assert status == 201, body
        spans = otlp.wait_for(lambda spans: pricing_servers(spans) == 2
                              and any(s.name == "process inventory.reserve_stock" for s in spans)
                              and any(s.name == "POST api/orders/" for s in spans))
    finally:
        partner.stop()
    assert_trace(spans, Expect("POST api/orders/", kind="SERVER", service="shop-web", children=[
        Expect("SELECT inventory_stock", kind="CLIENT", service="shop-web"),
        quote_call("shop-web"),
        Expect("INSERT orders_order", kind="CLIENT", service="shop-web"),
        Expect("INSERT tracing_app_outboxevent", kind="CLIENT", service="shop-web"),  # relay not running
        worker_path(Expect("POST", kind="CLIENT", service="shop-worker", error=False)),
    ]))
    webhook = the(spans, "POST", "shop-worker")
    [headers] = partner.headers
    assert headers["traceparent"].split("-")[1:3] == [webhook.trace_id, webhook.span_id]
    assert json.loads(partner.bodies[0])["status"] == "reserved"


def test_compose_health_check_passes_against_a_running_pricing_server(stack):
    """docker-compose.yaml's pricing health check, run against the real server (and against nothing)."""
    compose = (ROOT / "docker-compose.yaml").read_text()
    [probe] = re.findall(r'"python", "-c", "(import grpc;[^"]+)"', compose)
    assert "localhost:50051" in probe
    stack.start_pricing()
    up = subprocess.run([sys.executable, "-c", probe.replace("localhost:50051", stack.pricing_target)],
                        capture_output=True, timeout=DEADLINE)
    down = subprocess.run([sys.executable, "-c", probe.replace("localhost:50051", f"127.0.0.1:{free_port()}")],
                          capture_output=True, timeout=DEADLINE)
    assert up.returncode == 0, up.stderr
    assert down.returncode != 0
