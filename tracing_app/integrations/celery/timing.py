"""How long a task waited: for its countdown/ETA, then in the queue. Times are
nanoseconds since the epoch in, milliseconds out (``celery.task.*_ms``)."""

from __future__ import annotations

import datetime
from typing import Any

from tracing_app.integrations.celery.headers import SENT_AT_HEADER
from tracing_app.semconv import CELERY_TASK_ETA, CELERY_TASK_QUEUE_WAIT_MS, CELERY_TASK_SCHEDULED_WAIT_MS


def _iso_to_ns(value: Any) -> int | None:
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1e9)


def wait_attributes(request: Any, now_ns: int) -> dict[str, Any]:
    """``scheduled_wait_ms`` (publish to ETA) and ``queue_wait_ms`` (ETA, or publish, to start)."""
    attributes: dict[str, Any] = {}
    sent = getattr(request, SENT_AT_HEADER, None)
    sent_ns = int(sent) if isinstance(sent, str) and sent.isdigit() else None
    eta = getattr(request, "eta", None)
    eta_ns = _iso_to_ns(eta)
    if eta_ns is not None:
        attributes[CELERY_TASK_ETA] = eta if isinstance(eta, str) else eta.isoformat()
        if sent_ns is not None:
            attributes[CELERY_TASK_SCHEDULED_WAIT_MS] = round(max(0, eta_ns - sent_ns) / 1e6, 3)
    due_ns = max(filter(None, (eta_ns, sent_ns)), default=None)
    if due_ns is not None:
        attributes[CELERY_TASK_QUEUE_WAIT_MS] = round(max(0, now_ns - due_ns) / 1e6, 3)
    return attributes
