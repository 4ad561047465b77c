import datetime
import logging

import requests
from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.inventory.models import Stock
from apps.orders.models import Order
from apps.pricing import client as pricing
from tracing_app import business_context

logger = logging.getLogger(__name__)

PRICING_RETRIES = 5
WEBHOOK_TIMEOUT = 5.0


@shared_task(name="inventory.reserve_stock", bind=True, max_retries=PRICING_RETRIES)
def reserve_stock(self, order_id: int) -> str:
    """Price the order and take its quantity out of stock, or reject it when there is
    not enough stock or the sku has no price. The price at reservation is the one
    charged; while pricing is unreachable the task retries with backoff."""
    logger.info("reserving stock for order %s of tenant %s", order_id, business_context().get("tenant.id", "-"))
    order = Order.objects.get(pk=order_id)
    if order.status != Order.Status.PENDING:
        return order.status
    # Called before the transaction: no row stays locked while pricing answers.
    try:
        quote = pricing.quote(order.sku, order.quantity)
    except pricing.PriceNotFound:
        quote = None
    except pricing.PricingUnavailable as exc:
        raise self.retry(exc=exc, countdown=2**self.request.retries) from exc
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.status != Order.Status.PENDING:
            return order.status
        stock = Stock.objects.select_for_update().get(sku=order.sku)
        if quote is not None and stock.quantity >= order.quantity:
            stock.quantity -= order.quantity
            stock.save(update_fields=["quantity"])
            order.status = Order.Status.RESERVED
            order.total_cents, order.currency = quote.total_cents, quote.currency
        else:
            order.status = Order.Status.REJECTED
        order.save(update_fields=["status", "total_cents", "currency"])
    notify_webhook(order)
    return order.status


def notify_webhook(order: Order) -> None:
    """POST the order's outcome to ORDER_WEBHOOK_URL (a partner's HTTP service), if set.
    Best effort: a failing webhook is logged and does not fail the reservation."""
    url = settings.ORDER_WEBHOOK_URL
    if not url:
        return
    try:
        requests.post(url, json=order.as_json(), timeout=WEBHOOK_TIMEOUT).raise_for_status()
    except requests.RequestException as exc:
        logger.warning("order %s webhook to %s failed: %s", order.pk, url, exc)


@shared_task(name="inventory.reject_stale_orders")
def reject_stale_orders() -> int:
    """Run by celery beat (``CELERY_BEAT_SCHEDULE``): orders still pending after
    ``STALE_ORDER_SECONDS`` never got their stock reserved (pricing stayed down past the
    retries, the task was lost); reject them so that the customer is not left waiting.
    Returns how many were rejected."""
    cutoff = timezone.now() - datetime.timedelta(seconds=settings.STALE_ORDER_SECONDS)
    rejected = Order.objects.filter(status=Order.Status.PENDING, created_at__lt=cutoff).update(
        status=Order.Status.REJECTED)
    if rejected:
        logger.info("rejected %s stale pending orders", rejected)
    return rejected
