"""The stock API: what the quote view asks over HTTP, as it would ask an inventory service."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from .models import Stock


@require_GET
def stock_level(request: HttpRequest, sku: str) -> JsonResponse:
    stock = Stock.objects.filter(sku=sku).first()
    if stock is None:
        return JsonResponse({"error": f"unknown sku {sku!r}"}, status=404)
    return JsonResponse({"sku": stock.sku, "quantity": stock.quantity})
