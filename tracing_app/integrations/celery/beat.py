"""Celery beat: each scheduled send is the root of a trace of its own, named after its
schedule entry (``release-stale-orders``), with the task's PRODUCER span inside it and
the worker's run below that. Beat's process is named by its role (``pipeline/resource.py``,
set at ``beat_init`` by ``lifecycle``).

Celery sends no signal per scheduled send, and the task name alone (all the publish
signals see) cannot tell two entries that run one task with other arguments apart,
so this one patch wraps ``celery.beat.Scheduler.apply_async`` (which every scheduler
inherits: the default shelve one, django-celery-beat's), keeping the original as
``ORIGINAL`` and restoring it at ``uninstall()``. The root is INTERNAL: no messaging
or scheduling convention covers a timer firing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.beat import Scheduler
from opentelemetry import context, trace
from opentelemetry.trace import SpanKind

from tracing_app.context import privacy
from tracing_app.pipeline import provider
from tracing_app.safety import guarded
from tracing_app.semconv import CELERY_BEAT_ENTRY_NAME, CELERY_TASK_NAME

ORIGINAL: Callable[..., Any] | None = None


def install() -> None:
    global ORIGINAL
    if ORIGINAL is not None:
        return
    original = ORIGINAL = Scheduler.apply_async

    def apply_async(self: Scheduler, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        span: trace.Span = trace.INVALID_SPAN
        token = None
        with guarded("starting the span of a scheduled Celery send"):
            name = str(getattr(entry, "name", "") or getattr(entry, "task", "") or "scheduled task")
            # A new trace whatever is current: each scheduled run is its own.
            span = provider.get_tracer().start_span(name, context=context.Context(), kind=SpanKind.INTERNAL,
                                                    attributes={CELERY_BEAT_ENTRY_NAME: name,
                                                                CELERY_TASK_NAME: str(getattr(entry, "task", ""))})
            token = context.attach(trace.set_span_in_context(span, context.Context()))
        with privacy.ending(span, token, "recording a failed scheduled Celery send"):
            return original(self, entry, producer=producer, advance=advance, **kwargs)

    Scheduler.apply_async = apply_async


def uninstall() -> None:
    global ORIGINAL
    if ORIGINAL is not None:
        Scheduler.apply_async = ORIGINAL
        ORIGINAL = None
