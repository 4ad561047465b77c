"""Tasks the lifecycle tests run in real workers (``celery worker --include tests.e2e.tasks``)."""

import time
from pathlib import Path

from celery import shared_task


@shared_task(name="e2e.sleep")
def sleep(seconds: float, started_marker: str = "") -> float:
    """Sleep; first touch ``started_marker`` so that a test knows the task is running."""
    if started_marker:
        Path(started_marker).touch()
    time.sleep(seconds)
    return seconds


@shared_task(name="e2e.lose_worker")
def lose_worker(how: str) -> None:
    """End this worker process mid-task the way ``how`` says, as the OOM killer or a bug would."""
    import os
    import signal
    import sys

    if how == "SIGKILL":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "os._exit":
        os._exit(3)
    elif how == "sys.exit":
        sys.exit(4)
    time.sleep(60)


@shared_task(name="e2e.repeat_queries")
def repeat_queries(times: int, other_times: int = 0) -> None:
    """One statement shape ``times`` times with different values (an N+1 loop), and a second
    shape ``other_times`` times: what the repeated-query flag counts in a real worker."""
    from apps.inventory.models import Stock
    from apps.orders.models import Order

    for i in range(times):
        Stock.objects.filter(sku=f"repeat-{i}").first()
    for i in range(other_times):
        Order.objects.filter(sku=f"repeat-{i}").exists()
