"""The demo caches a product's price: the first request asks the pricing service, the next
ones are cache hits, and the trace says which (Django's cache, traced by tracing_app)."""

import pytest
from django.core.cache import cache
from django.test import Client

from apps.pricing import client as pricing
from apps.pricing.views import price_cache_key
from tracing_app.testing import Expect, assert_trace

ROUTE = "GET api/products/<str:sku>/price/"


@pytest.fixture
def quotes(monkeypatch):
    asked = []

    def quote(sku, quantity, timeout=None):
        asked.append(sku)
        if sku == "unobtainium":
            raise pricing.PriceNotFound(sku)
        return pricing.Quote(sku, quantity, 1250, 1250 * quantity, "EUR")

    monkeypatch.setattr(pricing, "quote", quote)
    yield asked
    cache.delete_many([price_cache_key("widget"), price_cache_key("unobtainium")])


def test_a_price_is_asked_once_then_served_from_the_cache(captured_spans, quotes):
    client = Client()
    for _ in range(3):
        response = client.get("/api/products/widget/price/")
        assert response.json() == {"sku": "widget", "unit_price_cents": 1250, "currency": "EUR"}
    assert quotes == ["widget"]
    roots = [s for s in captured_spans.records() if s.kind == "SERVER"]
    cache_spans = [s for s in captured_spans.records() if s.name == "get_or_set default"]
    assert [s.attributes["tracing_app.cache.hit"] for s in cache_spans] == [False, True, True]
    for root in roots:
        assert_trace([root, *[s for s in cache_spans if s.parent_id == root.span_id]], Expect(ROUTE, kind="SERVER",
                     children=[Expect("get_or_set default", kind="CLIENT", attributes={
                         "db.system.name": "django.locmem", "tracing_app.cache.key": "product-price:widget"})]))


def test_an_unknown_product_is_404_and_not_cached(captured_spans, quotes):
    client = Client(raise_request_exception=False)
    assert client.get("/api/products/unobtainium/price/").status_code == 404
    assert client.get("/api/products/unobtainium/price/").status_code == 404
    assert quotes == ["unobtainium", "unobtainium"]
    errors = [s for s in captured_spans.records() if s.name == "get_or_set default"]
    assert [s.attributes["error.type"] for s in errors] == ["PriceNotFound", "PriceNotFound"]
