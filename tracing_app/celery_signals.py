"""Celery: a PRODUCER span per task publish, a CONSUMER span per task run.

The trace context travels in the task message's headers, which kombu sends as
AMQP application headers; the worker reads them back from ``task.request``.

Built on Celery's public signals (connected with ``weak=False``) rather than
``opentelemetry-instrumentation-celery``: that instrumentor only traces a
publish when the task is registered in the publishing process, so
``app.send_task("name")`` from a web process (the usual case) sends no context
at all, and it is installed per process by patching. The span names and
attributes here follow the messaging semantic conventions.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from celery import signals
from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import privacy, provider
from .conf import TracingConfig
from .integration import Integration
from .safety import guarded

logger = logging.getLogger(__name__)

ATTR_SYSTEM = "messaging.system"
ATTR_OPERATION_TYPE = "messaging.operation.type"
ATTR_OPERATION_NAME = "messaging.operation.name"
ATTR_DESTINATION = "messaging.destination.name"
ATTR_ROUTING_KEY = "messaging.rabbitmq.destination.routing_key"
ATTR_MESSAGE_ID = "messaging.message.id"
ATTR_TASK_NAME = "celery.task.name"
ATTR_TASK_STATE = "celery.task.state"
ATTR_RETRIES = "celery.task.retries"
ATTR_ARGS = "celery.task.args"
ATTR_KWARGS = "celery.task.kwargs"
ATTR_ERROR_TYPE = "error.type"
SYSTEM = "celery"

_pending_publish: contextvars.ContextVar[trace.Span | None] = contextvars.ContextVar(
    "tracing_app_pending_publish", default=None
)


class TaskRequestGetter(Getter[Any]):
    """Reads propagation headers from ``task.request``. A worker copies the
    message's headers onto the request as attributes; ``task.apply(headers=...)``
    and some Celery versions keep them nested under ``request.headers`` instead."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = getattr(carrier, key, None)
        if value is None:
            nested = getattr(carrier, "headers", None)
            value = nested.get(key) if isinstance(nested, dict) else None
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Any) -> list[str]:
        return list(getattr(carrier, "__dict__", {}))


REQUEST_GETTER = TaskRequestGetter()


class CeleryIntegration(Integration):
    name = "celery"

    def __init__(self) -> None:
        super().__init__()
        self._running: dict[str, tuple[trace.Span, object]] = {}
        self.record_args: Any = None  # task names whose args/kwargs may be recorded (privacy.py)

    _SIGNALS = (
        ("before_task_publish", "_before_publish"),
        ("after_task_publish", "_after_publish"),
        ("task_prerun", "_prerun"),
        ("task_postrun", "_postrun"),
        ("task_failure", "_failure"),
        ("task_retry", "_retry"),
        ("worker_process_shutdown", "_flush"),
        ("worker_shutdown", "_flush"),
    )

    def _install(self, config: TracingConfig) -> None:
        self.record_args = privacy.task_args_recorder(config.record_task_args)
        for signal_name, method in self._SIGNALS:
            getattr(signals, signal_name).connect(
                getattr(self, method), weak=False, dispatch_uid=f"tracing_app.{signal_name}"
            )

    def _uninstall(self) -> None:
        for signal_name, method in self._SIGNALS:
            getattr(signals, signal_name).disconnect(
                getattr(self, method), dispatch_uid=f"tracing_app.{signal_name}"
            )

    # -- publishing ----------------------------------------------------------

    def _before_publish(self, sender: str | None = None, headers: dict | None = None,
                        routing_key: str | None = None, exchange: str | None = None, **kwargs: Any) -> None:
        with guarded("tracing a Celery publish"):
            stale = _pending_publish.get()
            if stale is not None:
                # The previous publish in this context raised before after_task_publish.
                stale.set_status(Status(StatusCode.ERROR, "publish did not complete"))
                stale.end()
            if headers is None:
                return
            task_name = sender or headers.get("task") or "unknown"
            attributes = {
                ATTR_SYSTEM: SYSTEM,
                ATTR_OPERATION_TYPE: "send",
                ATTR_OPERATION_NAME: "send",
                ATTR_TASK_NAME: task_name,
                ATTR_DESTINATION: routing_key or exchange or "",
            }
            if headers.get("id"):
                attributes[ATTR_MESSAGE_ID] = str(headers["id"])
            if routing_key:
                attributes[ATTR_ROUTING_KEY] = routing_key
            span = provider.get_tracer().start_span(f"send {task_name}", kind=SpanKind.PRODUCER, attributes=attributes)
            propagate.inject(headers, context=trace.set_span_in_context(span))
            _pending_publish.set(span)

    def _after_publish(self, **kwargs: Any) -> None:
        span = _pending_publish.get()
        if span is not None:
            _pending_publish.set(None)
            span.end()

    # -- running -------------------------------------------------------------

    def _prerun(self, task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None,
                **extra: Any) -> None:
        with guarded("starting a Celery task span"):
            request = getattr(task, "request", None)
            # Eager calls (task.apply(), CELERY_TASK_ALWAYS_EAGER) carry no headers:
            # they continue the caller's current context instead.
            parent = propagate.extract(request, getter=REQUEST_GETTER, context=context.get_current())
            delivery = getattr(request, "delivery_info", None) or {}
            attributes = {
                ATTR_SYSTEM: SYSTEM,
                ATTR_OPERATION_TYPE: "process",
                ATTR_OPERATION_NAME: "process",
                ATTR_TASK_NAME: task.name,
                ATTR_MESSAGE_ID: str(task_id),
                ATTR_DESTINATION: delivery.get("routing_key") or "",
                ATTR_RETRIES: int(getattr(request, "retries", 0) or 0),
            }
            if self.record_args is not None and self.record_args.search(task.name):
                attributes[ATTR_ARGS] = privacy.bounded_repr(tuple(args or ()))
                attributes[ATTR_KWARGS] = privacy.bounded_repr(dict(kwargs or {}))
            span = provider.get_tracer().start_span(
                f"process {task.name}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
            )
            token = context.attach(trace.set_span_in_context(span, parent))
            self._running[str(task_id)] = (span, token)

    def _postrun(self, task_id: str | None = None, state: str | None = None, **kwargs: Any) -> None:
        entry = self._running.pop(str(task_id), None)
        if entry is None:
            return
        span, token = entry
        with guarded("ending a Celery task span"):
            if state:
                span.set_attribute(ATTR_TASK_STATE, state)
            span.end()
        context.detach(token)

    def _failure(self, task_id: str | None = None, exception: BaseException | None = None, **kwargs: Any) -> None:
        entry = self._running.get(str(task_id))
        if entry is None or exception is None:
            return
        with guarded("recording a Celery task failure"):
            span = entry[0]
            span.record_exception(exception)
            span.set_attribute(ATTR_ERROR_TYPE, type(exception).__qualname__)
            span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))

    def _retry(self, request: Any = None, reason: Any = None, **kwargs: Any) -> None:
        entry = self._running.get(str(getattr(request, "id", "")))
        if entry is not None:
            with guarded("recording a Celery task retry"):
                entry[0].add_event("retry", {"reason": str(reason)[:500]})

    # -- process lifecycle -----------------------------------------------------

    def _flush(self, **kwargs: Any) -> None:
        # A prefork child is about to exit (recycled by --max-tasks-per-child or
        # at shutdown) without running atexit handlers: flush what it ended.
        with guarded("flushing spans at worker process shutdown"):
            provider.force_flush()


integration = CeleryIntegration()
