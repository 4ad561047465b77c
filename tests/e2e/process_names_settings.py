"""The demo's settings with SERVICE_NAME only (no SERVICE_NAMES) and a beat schedule: the
processes of tests/e2e/test_process_names.py are named by the role rule alone."""

from project.settings import *  # noqa: F403
from project.settings import TRACING

TRACING = {key: value for key, value in TRACING.items() if key != "SERVICE_NAMES"}
TRACING["SERVICE_NAME"] = "e2e-shop"

CELERY_BEAT_SCHEDULE = {"e2e-tick": {"task": "e2e.sleep", "schedule": 0.5, "args": (0,)}}
