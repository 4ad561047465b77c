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
