import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="orders.send_confirmation")
def send_confirmation(order_id: int, email: str) -> None:
    """Tell the customer that the order was taken. (The demo only logs it, without the address.)"""
    logger.info("confirmation for order %s sent", order_id)
