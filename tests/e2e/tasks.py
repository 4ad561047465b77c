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
