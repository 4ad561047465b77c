import logging

from celery import shared_task
from django.db import transaction

from apps.inventory.models import Stock
from apps.orders.models import Order
from tracing_app import business_context

logger = logging.getLogger(__name__)


@shared_task(name="inventory.reserve_stock")
def reserve_stock(order_id: int) -> str:
    """Take the order's quantity out of stock, or reject the order when there is not enough."""
    logger.info("reserving stock for order %s of tenant %s", order_id, business_context().get("tenant.id", "-"))
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.status != Order.Status.PENDING:
            return order.status
        stock = Stock.objects.select_for_update().get(sku=order.sku)
        if stock.quantity >= order.quantity:
            stock.quantity -= order.quantity
            stock.save(update_fields=["quantity"])
            order.status = Order.Status.RESERVED
        else:
            order.status = Order.Status.REJECTED
        order.save(update_fields=["status"])
    return order.status
