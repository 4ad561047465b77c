"""The demo's orders API: validation answers 400 with a message, a good order is 201 and publishes."""

import json

import pytest
from celery import signals
from django.test import Client

from apps.inventory.models import Stock
from apps.orders.models import Order
from apps.pricing import client as pricing

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published():
    """Names of the tasks the view published (to kombu's in-memory broker in tests)."""
    sent = []

    def keep(sender=None, **kwargs):
        sent.append(sender)

    signals.after_task_publish.connect(keep, weak=False)
    yield sent
    signals.after_task_publish.disconnect(keep)


def post(body):
    return Client(raise_request_exception=False).post("/api/orders/", body, content_type="application/json")


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "body must be JSON"),
    (b"[1, 2]", "body must be a JSON object"),
    (json.dumps({"sku": "", "quantity": 1}), "sku must be a non-empty string"),
    (json.dumps({"sku": "widget", "quantity": 0}), "quantity must be a whole number"),
    (json.dumps({"sku": "widget", "quantity": True}), "quantity must be a whole number"),
    (json.dumps({"sku": "unobtainium", "quantity": 1}), "unknown sku 'unobtainium'"),
])
def test_bad_orders_answer_400_with_a_clear_message(body, message, published):
    response = post(body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert Order.objects.count() == 0 and published == []


@pytest.fixture
def quotes(monkeypatch):
    """The pricing client answering from a dict (sku -> unit cents); the real service
    is exercised end to end in tests/e2e/test_pricing_trace.py."""
    prices = {"widget": 1999}

    def quote(sku, quantity, timeout=None):
        if sku not in prices:
            raise pricing.PriceNotFound(f"no price for sku {sku!r}")
        return pricing.Quote(sku, quantity, prices[sku], prices[sku] * quantity, "EUR")

    monkeypatch.setattr(pricing, "quote", quote)
    return prices


def test_good_order_is_priced_created_and_reserve_stock_is_published_after_commit(published, quotes):
    Stock.objects.get_or_create(sku="widget", defaults={"quantity": 10})  # flushed by earlier tests
    response = post(json.dumps({"sku": "widget", "quantity": 2}))
    assert response.status_code == 201
    order = Order.objects.get()
    assert response.json() == {"id": order.pk, "sku": "widget", "quantity": 2, "status": "pending",
                               "total_cents": 3998, "currency": "EUR"}
    assert published == ["inventory.reserve_stock"]


def test_sku_without_a_price_is_refused(published, quotes):
    Stock.objects.get_or_create(sku="gizmo", defaults={"quantity": 10})
    response = post(json.dumps({"sku": "gizmo", "quantity": 1}))
    assert (response.status_code, response.json()) == (400, {"error": "sku 'gizmo' has no price"})
    assert Order.objects.count() == 0 and published == []


def test_pricing_unreachable_takes_the_order_with_its_price_pending(published):
    """tests/settings.py points PRICING_TARGET at a socket that does not exist: the real
    client gets UNAVAILABLE, and the order is still taken for the worker to price."""
    Stock.objects.get_or_create(sku="widget", defaults={"quantity": 10})
    response = post(json.dumps({"sku": "widget", "quantity": 1}))
    assert response.status_code == 201
    assert response.json()["total_cents"] is None and response.json()["currency"] is None
    assert published == ["inventory.reserve_stock"]


def test_order_detail_and_missing_order():
    order = Order.objects.create(sku="gadget", quantity=1)
    client = Client()
    assert client.get(f"/api/orders/{order.pk}/").json() == {
        "id": order.pk, "sku": "gadget", "quantity": 1, "status": "pending", "total_cents": None, "currency": None}
    assert client.get("/api/orders/999999/").status_code == 404


def test_healthz():
    assert Client().get("/healthz").content == b"ok"
