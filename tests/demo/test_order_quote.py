"""The demo's async view: GET /api/orders/<id>/quote asks pricing (grpc.aio) and the
stock API (httpx.AsyncClient) at the same time, with asyncio.gather. One trace: the
request, its query, and both calls each with its server side beneath it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connections
from django.test import AsyncClient, override_settings

from apps.inventory.models import Stock
from apps.orders.models import Order
from apps.pricing.models import Price
from apps.pricing.server import build_server
from tracing_app.testing import Expect, assert_trace

QUOTE = "GET api/orders/<int:pk>/quote"
PRICING = "shop.pricing.v1.Pricing/GetQuote"


@pytest.fixture
def stock_api():
    """The web app served over real HTTP on loopback, for the view's stock calls
    (pytest-django's live_server would wrap it in the static files handler, which
    this demo does not configure)."""
    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def pricing_server(monkeypatch):
    # Its handler threads close their connections after each call (as the web's do),
    # so none is left open on the test database when it is dropped.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    server, port = build_server("127.0.0.1:0", max_workers=2)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None).wait()


def get(path: str):
    async def request():
        try:
            return await AsyncClient().get(path)
        finally:
            # The view's queries ran on sync_to_async's thread; the test client keeps
            # Django from closing that thread's connection, so close it here.
            await sync_to_async(connections.close_all)()

    return asyncio.run(request())


def wait_for_spans(captured, count: int) -> list:
    """The servers' spans end on their own threads, after the answers."""
    deadline = time.monotonic() + 20
    while len(captured.records()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return captured.records()


@pytest.mark.django_db(transaction=True)
def test_the_quote_fans_out_to_pricing_and_stock_in_one_trace(stock_api, pricing_server, captured_spans):
    Stock.objects.update_or_create(sku="widget", defaults={"quantity": 5})
    Price.objects.update_or_create(sku="widget", defaults={"unit_price_cents": 250, "currency": "EUR"})
    order = Order.objects.create(sku="widget", quantity=3)
    captured_spans.clear()
    with override_settings(PRICING_TARGET=pricing_server, INVENTORY_URL=stock_api):
        response = get(f"/api/orders/{order.pk}/quote")
    assert response.status_code == 200, response.content
    assert response.json() == {"order": order.pk, "sku": "widget", "quantity": 3, "total_cents": 750,
                               "currency": "EUR", "in_stock": True}
    spans = wait_for_spans(captured_spans, 8)
    pricing = Expect(PRICING, kind="CLIENT", error=False, children=[
        Expect(PRICING, kind="SERVER", error=False, children=[Expect("SELECT pricing_price", kind="CLIENT")]),
    ])
    stock = Expect("GET", kind="CLIENT", error=False, attributes={"http.response.status_code": 200}, children=[
        Expect("GET api/stock/<str:sku>/", kind="SERVER", error=False, children=[
            Expect("SELECT inventory_stock", kind="CLIENT"),
        ]),
    ])
    # gather starts both calls at once: which span starts first is the scheduler's choice.
    calls = [pricing, stock] if _starts(spans, PRICING) < _starts(spans, "GET") else [stock, pricing]
    assert_trace(spans, Expect(QUOTE, kind="SERVER", error=False, children=[
        Expect("SELECT orders_order", kind="CLIENT"), *calls,
    ]))
    # Concurrent: each call started before the other ended.
    pricing_call, stock_call = _client(spans, PRICING), _client(spans, "GET")
    assert pricing_call.start_ns < stock_call.end_ns and stock_call.start_ns < pricing_call.end_ns


@pytest.mark.django_db(transaction=True)
def test_pricing_down_answers_503_and_both_calls_are_still_traced(stock_api, captured_spans):
    Stock.objects.update_or_create(sku="widget", defaults={"quantity": 5})
    order = Order.objects.create(sku="widget", quantity=3)
    captured_spans.clear()
    with override_settings(INVENTORY_URL=stock_api):  # PRICING_TARGET: a socket that does not exist
        response = get(f"/api/orders/{order.pk}/quote")
    assert response.status_code == 503
    spans = wait_for_spans(captured_spans, 6)
    assert _client(spans, PRICING).error and _client(spans, PRICING).attributes["error.type"] == "UNAVAILABLE"
    assert not _client(spans, "GET").error


def _client(spans, name):
    [span] = [s for s in spans if s.kind == "CLIENT" and s.name == name]
    return span


def _starts(spans, name) -> int:
    return _client(spans, name).start_ns
