"""The demo's async quote view under a real ASGI server (uvicorn), exporting real OTLP:
GET /api/orders/<id>/quote asks the pricing process over grpc.aio and an inventory
web process over httpx.AsyncClient at once; one trace across the three services."""

from __future__ import annotations

import json

import pytest

from tracing_app.testing import Expect, assert_trace

from .test_order_trace import GET_QUOTE, quote_call

STOCK = Expect("GET", kind="CLIENT", service="shop-web", error=False,
               attributes={"http.request.method": "GET", "http.response.status_code": 200}, children=[
                   Expect("GET api/stock/<str:sku>/", kind="SERVER", service="shop-inventory", error=False, children=[
                       Expect("SELECT inventory_stock", kind="CLIENT", service="shop-inventory"),
                   ]),
               ])


def client_span(spans, name):
    [span] = [s for s in spans if s.kind == "CLIENT" and s.name == name and s.service == "shop-web"]
    return span


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_quote_view_fans_out_over_grpc_aio_and_httpx_under_asgi(stack, otlp, server):
    [(order_id,)] = stack.database.query(
        "insert into orders_order (sku, quantity, status, created_at, currency)"
        " values ('widget', 2, 'pending', now(), '') returning id")
    stack.start_pricing()
    inventory = stack.start_web(service_name="shop-inventory")
    web = stack.start_asgi_web(server, INVENTORY_URL=inventory.url)

    status, _, body = web.request("GET", f"/api/orders/{order_id}/quote")
    assert status == 200, body
    answer = json.loads(body)
    assert (answer["order"], answer["quantity"], answer["in_stock"]) == (order_id, 2, True)
    assert answer["total_cents"] > 0

    spans = otlp.wait_for(lambda spans: {"shop-pricing", "shop-inventory"} <= {
        s.service for s in spans if s.kind == "SERVER"} and any(s.name.endswith("/quote") for s in spans))
    calls = [quote_call("shop-web"), STOCK]
    if client_span(spans, "GET").start_ns < client_span(spans, GET_QUOTE).start_ns:
        calls.reverse()  # gather starts both: which span starts first is the scheduler's choice
    assert_trace(spans, Expect("GET api/orders/<int:pk>/quote", kind="SERVER", service="shop-web", error=False,
                               children=[Expect("SELECT orders_order", kind="CLIENT", service="shop-web"), *calls]))
    pricing, stock = client_span(spans, GET_QUOTE), client_span(spans, "GET")
    assert pricing.start_ns < stock.end_ns and stock.start_ns < pricing.end_ns, "the two calls overlap"
