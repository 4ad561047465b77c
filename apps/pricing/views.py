"""A product's price for the shop's pages, cached: quotes come from the pricing service,
and a price changes far less often than it is shown."""

from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from . import client

PRICE_CACHE_SECONDS = 60


def price_cache_key(sku: str) -> str:
    return f"product-price:{sku}"


@require_GET
def product_price(request: HttpRequest, sku: str) -> JsonResponse:
    def quote() -> dict:
        found = client.quote(sku, 1)
        return {"sku": sku, "unit_price_cents": found.unit_price_cents, "currency": found.currency}

    try:
        price = cache.get_or_set(price_cache_key(sku), quote, PRICE_CACHE_SECONDS)
    except client.PriceNotFound:
        return JsonResponse({"error": f"no price for {sku}"}, status=404)
    except client.PricingUnavailable:
        return JsonResponse({"error": "pricing is unavailable, try again"}, status=503)
    return JsonResponse(price)
