import asyncio
import json
import logging
import time
import urllib.parse

import httpx
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps.inventory.models import Stock
from apps.pricing import client as pricing
from tracing_app import write_event

from .models import Order

logger = logging.getLogger(__name__)

RESERVE_STOCK = "inventory.reserve_stock"
SEND_CONFIRMATION = "orders.send_confirmation"
ORDER_CREATED = "order.created"
MAX_QUANTITY = 1000
# The order-status stream polls the order this often and gives up after STREAM_SECONDS.
STREAM_POLL_SECONDS = 0.5
STREAM_SECONDS = 60.0


def bad_request(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=400)


def parse_order(body: bytes) -> tuple[dict | None, str]:
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        return None, "body must be JSON"
    if not isinstance(data, dict):
        return None, 'body must be a JSON object like {"sku": "widget", "quantity": 2}'
    sku, quantity = data.get("sku"), data.get("quantity")
    if not isinstance(sku, str) or not sku:
        return None, "sku must be a non-empty string"
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= MAX_QUANTITY:
        return None, f"quantity must be a whole number from 1 to {MAX_QUANTITY}"
    return {"sku": sku, "quantity": quantity}, ""


@csrf_exempt
@require_POST
def orders(request: HttpRequest) -> JsonResponse:
    data, error = parse_order(request.body)
    if data is None:
        return bad_request(error)
    if not Stock.objects.filter(sku=data["sku"]).exists():
        return bad_request(f"unknown sku {data['sku']!r}")
    try:
        quote = pricing.quote(data["sku"], data["quantity"])
    except pricing.PriceNotFound:
        return bad_request(f"sku {data['sku']!r} has no price")
    except pricing.PricingUnavailable as exc:
        # Pricing being down does not lose the order: it is taken with its price
        # pending, and reserve_stock prices it (retrying while pricing is down).
        logger.warning("order taken with its price pending: %s", exc)
        quote = None
    if quote is not None:
        data.update(total_cents=quote.total_cents, currency=quote.currency)
    with transaction.atomic():
        order = Order.objects.create(**data)
        # Published by `manage.py relay_outbox` once this transaction commits, never if it rolls back.
        write_event(ORDER_CREATED, {"order_id": order.pk, "sku": order.sku, "quantity": order.quantity},
                    exchange=settings.EVENTS_EXCHANGE)
        # The web process does not import the inventory tasks: it publishes by
        # name, as a service boundary would. on_commit: the worker must see the row.
        # Nobody reads its result: ignore_result, or send_task asks the worker to store one.
        transaction.on_commit(lambda: current_app.send_task(RESERVE_STOCK, args=[order.pk], ignore_result=True))
        email = getattr(request.user, "email", "")
        if email:
            # The address is a task argument: tracing_app never records it (RECORD_TASK_ARGS).
            transaction.on_commit(lambda: current_app.send_task(SEND_CONFIRMATION, args=[order.pk, email],
                                                                ignore_result=True))
    logger.info("order %s created", order.pk)
    return JsonResponse(order.as_json(), status=201)


@require_GET
def order_detail(request: HttpRequest, pk: int) -> JsonResponse:
    order = Order.objects.filter(pk=pk).first()
    if order is None:
        return JsonResponse({"error": f"order {pk} not found"}, status=404)
    return JsonResponse(order.as_json())


@require_GET
async def order_quote(request: HttpRequest, pk: int) -> JsonResponse:
    """What an order costs now and whether it can be served: the pricing service (gRPC)
    and the stock API (HTTP) are asked at the same time."""
    order = await Order.objects.filter(pk=pk).afirst()
    if order is None:
        return JsonResponse({"error": f"order {pk} not found"}, status=404)
    try:
        quote, stock = await asyncio.gather(
            pricing.aquote(order.sku, order.quantity),
            stock_level(order.sku),
        )
    except pricing.PriceNotFound:
        return JsonResponse({"error": f"sku {order.sku!r} has no price"}, status=404)
    except (pricing.PricingUnavailable, httpx.HTTPError) as exc:
        logger.warning("quote for order %s failed: %s", pk, exc)
        return JsonResponse({"error": "pricing or inventory is unavailable, try again"}, status=503)
    return JsonResponse({
        "order": order.pk, "sku": order.sku, "quantity": order.quantity,
        "total_cents": quote.total_cents, "currency": quote.currency,
        "in_stock": stock["quantity"] >= order.quantity,
    })


async def stock_level(sku: str) -> dict:
    async with httpx.AsyncClient(base_url=settings.INVENTORY_URL, timeout=settings.PRICING_TIMEOUT) as client:
        response = await client.get(f"/api/stock/{urllib.parse.quote(sku, safe='')}/")
        response.raise_for_status()
        return response.json()


@require_GET
async def order_events(request: HttpRequest, pk: int) -> StreamingHttpResponse | JsonResponse:
    """Server-sent events: the order's status now and at each change, until it is final
    (reserved or rejected) or STREAM_SECONDS pass. Async: under ASGI a waiting stream
    holds no thread."""
    order = await Order.objects.filter(pk=pk).afirst()
    if order is None:
        return JsonResponse({"error": f"order {pk} not found"}, status=404)

    async def events():
        status, deadline = order.status, time.monotonic() + STREAM_SECONDS
        yield f"event: status\ndata: {json.dumps(order.as_json())}\n\n"
        while status == Order.Status.PENDING and time.monotonic() < deadline:
            await asyncio.sleep(STREAM_POLL_SECONDS)
            current = await Order.objects.filter(pk=pk).afirst()
            if current is not None and current.status != status:
                status = current.status
                yield f"event: status\ndata: {json.dumps(current.as_json())}\n\n"

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response
