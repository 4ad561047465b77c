"""The canary task ``manage.py tracing_check --worker`` sends through the broker.

Found by Celery's ``app.autodiscover_tasks()`` (or ``include=["tracing_app.tasks"]``).
The worker answers on the reply queue the command named, with the trace id of
the span it ran the task in, so the command can tell whether the trace context
crossed the broker.
"""

from __future__ import annotations

import os
import socket

from celery import current_app, shared_task
from opentelemetry import trace

CANARY_TASK = "tracing_app.canary"


@shared_task(name=CANARY_TASK, ignore_result=True)
def canary(reply_to: str) -> None:
    context = trace.get_current_span().get_span_context()
    answer = {
        "trace_id": f"{context.trace_id:032x}" if context.is_valid else "",
        "hostname": getattr(canary.request, "hostname", None) or socket.gethostname(),
        "pid": os.getpid(),
    }
    with current_app.producer_or_acquire() as producer:
        producer.publish(answer, exchange="", routing_key=reply_to, serializer="json", retry=True)
