"""Settings of the worker that runs the end-to-end Celery tests: the demo's, plus test tasks
and the new-trace rules under test."""

import os

from project.settings import *  # noqa: F403
from project.settings import TRACING

CELERY_IMPORTS = ["tests.e2e.celery_tasks"]

TRACING = {
    **TRACING,
    "CELERY_NEW_TRACE_TASKS": ["e2e.fan_out_*"],
    "CELERY_NEW_TRACE_QUEUES": [os.environ.get("E2E_BULK_QUEUE", "bulk")],
}
