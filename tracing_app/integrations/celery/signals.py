"""Celery: a PRODUCER span per task publish, a CONSUMER span per task run.

The trace context travels in the task message's headers, which kombu sends as
AMQP application headers; the worker reads them back from ``task.request``.

Built on Celery's public signals (connected with ``weak=False``), as
``opentelemetry-instrumentation-celery`` is. We do not reuse that instrumentor
(checked against 0.66b1) because its spans do not follow the messaging semantic
conventions (names ``apply_async/<task>`` and ``run/<task>``, ``celery.action`` and
``celery.task_name`` instead of ``messaging.*``), and it has none of what follows:
attempt links across retries, chord links, ETA and queue waits, new traces for
fan-out tasks, spans for tasks killed by a time limit, and no span at all under an
unsampled publisher. The span names and attributes here follow the messaging
semantic conventions.

Beyond one task:

- ``send_task`` by name: ``before_task_publish`` and ``after_task_publish`` are sent
  around the real ``producer.publish`` for every task, registered or not, so the
  PRODUCER span times the publish itself.
- Tasks published inside a running task (retries, chains, chord callbacks, plain
  ``.delay()``) are children of that task's span, which is current while it runs.
- Retries: every attempt is its own CONSUMER span with ``celery.task.attempt`` and a
  link to the previous attempt (sent in the ``PREVIOUS_ATTEMPT_HEADER``).
- countdown/ETA: ``celery.task.scheduled_wait_ms`` (publish to due time) and
  ``celery.task.queue_wait_ms`` (due time, or publish time, to start) are separate.
- ``TRACING["CELERY_NEW_TRACE_TASKS"]``/``["CELERY_NEW_TRACE_QUEUES"]``: those runs
  start a new trace linked to the publisher, sampled as the publisher was.
- Chords: each header task records its span (table ``ChordHeaderRun``); the header
  task that completes the chord publishes the callback with links to all of them.
- Failure, rejection (``Reject``), unknown or undecodable messages: ERROR status and
  the exception on the span.
"""

from __future__ import annotations

import contextvars
import dataclasses
import fnmatch
import logging
import time
from typing import Any

from celery import current_app, signals
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracing_app.conf import TracingConfig
from tracing_app.context import privacy, work
from tracing_app.context.carriers import CARRIER, RABBITMQ, messaging_system
from tracing_app.context.propagators import attach, current_context, detach, inject_context, with_span
from tracing_app.context.suppression import suppressed
from tracing_app.integrations.base import Integration
from tracing_app.integrations.celery import beat as celery_beat
from tracing_app.integrations.celery import lifecycle as celery_lifecycle
from tracing_app.integrations.celery import sender as celery_sender
from tracing_app.integrations.celery.chords import MAX_CHORD_LINKS, pop_chord_header_runs, record_chord_header_run
from tracing_app.integrations.celery.headers import (
    CHORD_LINKS_HEADER,
    PREVIOUS_ATTEMPT_HEADER,
    REQUEST_GETTER,
    SENT_AT_HEADER,
    span_context_of,
    traceparent_of,
)
from tracing_app.integrations.celery.timing import wait_attributes
from tracing_app.integrations.celery.transport import system_of_app
from tracing_app.pipeline import provider
from tracing_app.pipeline.fast_spans import drops_child_of_current
from tracing_app.pipeline.linked_traces import new_trace_linked_to
from tracing_app.safety import guarded, swallow
from tracing_app.semconv import (
    CELERY_TASK_ARGS,
    CELERY_TASK_ATTEMPT,
    CELERY_TASK_KWARGS,
    CELERY_TASK_NAME,
    CELERY_TASK_RETRIES,
    CELERY_TASK_STATE,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_LINK_SOURCE,
    MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
    MESSAGING_SYSTEM,
)

logger = logging.getLogger(__name__)

@dataclasses.dataclass
class Run:
    task_id: str
    request: Any
    span: trace.Span
    var_token: contextvars.Token | None = None
    otel_token: object = None
    opened_work: work.Opened | None = None  # repeated queries of this run (context.work)


@dataclasses.dataclass
class PendingPublish:
    """A PRODUCER span between ``before_task_publish`` and the publish's end, and the
    headers dict of its message (the same object reaches every hook of that publish)."""

    span: trace.Span
    headers: dict


_pending_publish: contextvars.ContextVar[PendingPublish | None] = contextvars.ContextVar(
    "tracing_app_pending_publish", default=None
)
# The task running in this context. A context variable, not a dict by task id: a
# retried task can start its next attempt (same id) in another thread of the
# same worker before this attempt's postrun.
_current_run: contextvars.ContextVar[Run | None] = contextvars.ContextVar("tracing_app_current_run", default=None)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return bool(name) and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _record_error(span: trace.Span, exception: BaseException) -> None:
    privacy.record_error(span, exception)


def _chord_callback_id(request: Any) -> str | None:
    chord = getattr(request, "chord", None)
    options = chord.get("options") if isinstance(chord, dict) else getattr(chord, "options", None)
    return str(options.get("task_id")) if isinstance(options, dict) and options.get("task_id") else None


class CeleryIntegration(Integration):
    name = "celery"

    def __init__(self) -> None:
        super().__init__()
        self.record_args: Any = None  # task names whose args/kwargs may be recorded (privacy.py)
        self._new_trace_tasks: tuple[str, ...] = ()
        self._new_trace_queues: tuple[str, ...] = ()

    _SIGNALS = (
        ("before_task_publish", "_before_publish"),
        ("after_task_publish", "_after_publish"),
        ("task_prerun", "_prerun"),
        ("task_postrun", "_postrun"),
        ("task_failure", "_failure"),
        ("task_retry", "_retry"),
        ("task_unknown", "_unknown"),
        ("task_rejected", "_rejected"),
    )

    def _install(self, config: TracingConfig) -> None:
        self.record_args = privacy.task_args_recorder(config.record_task_args)
        self.configure(config)
        for signal_name, method in self._SIGNALS:
            getattr(signals, signal_name).connect(
                getattr(self, method), weak=False, dispatch_uid=f"tracing_app.{signal_name}"
            )
        celery_lifecycle.install()  # process start/exit flushing, spans of killed tasks
        celery_sender.install(self._publish_failed)
        celery_beat.install()

    def configure(self, config: TracingConfig) -> None:
        self._new_trace_tasks = tuple(config.celery_new_trace_tasks)
        self._new_trace_queues = tuple(config.celery_new_trace_queues)

    def _uninstall(self) -> None:
        for signal_name, method in self._SIGNALS:
            getattr(signals, signal_name).disconnect(
                getattr(self, method), dispatch_uid=f"tracing_app.{signal_name}"
            )
        celery_lifecycle.uninstall()
        celery_sender.uninstall()
        celery_beat.uninstall()

    # -- publishing ----------------------------------------------------------

    def _before_publish(self, sender: str | None = None, headers: dict | None = None,
                        routing_key: str | None = None, exchange: str | None = None, **kwargs: Any) -> None:
        try:  # safety.swallow, not guarded(): this runs for every publish
            stale = _pending_publish.get()
            if stale is not None:
                # A publish through a sender built before install raised before
                # after_task_publish (sender.py wraps the others).
                _pending_publish.set(None)
                stale.span.set_status(Status(StatusCode.ERROR, "publish did not complete"))
                stale.span.end()
            current = current_context()  # read once, passed to each step below
            if headers is None or suppressed(current):  # untraced(): no span, no context sent
                return
            tracer = provider.get_tracer()
            if drops_child_of_current(tracer, current):
                # Not sampled: no span, but the worker still learns the decision.
                self._mark_follow_up(headers)
                inject_context(headers, current, setter=CARRIER)
                return
            task_name = sender or headers.get("task") or "unknown"
            producer = celery_sender.current_producer()
            if producer is not None:
                system = messaging_system(producer)
            else:  # a sender built before install: the current app's broker
                system = system_of_app(current_app._get_current_object())
            attributes = {
                MESSAGING_SYSTEM: system,
                MESSAGING_OPERATION_TYPE: "send",
                MESSAGING_OPERATION_NAME: "send",
                CELERY_TASK_NAME: task_name,
                MESSAGING_DESTINATION_NAME: routing_key or exchange or "",
            }
            if headers.get("id"):
                attributes[MESSAGING_MESSAGE_ID] = str(headers["id"])
            if routing_key and system == RABBITMQ:
                attributes[MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY] = routing_key
            if headers.get("retries"):
                attributes[CELERY_TASK_RETRIES] = int(headers["retries"])
            span = tracer.start_span(f"send {task_name}", context=current, kind=SpanKind.PRODUCER,
                                     attributes=attributes)
            # Pending at once: whatever fails below, the publish's end still ends the span.
            _pending_publish.set(PendingPublish(span, headers))
            self._mark_follow_up(headers)
            inject_context(headers, with_span(span, current), setter=CARRIER)
            headers[SENT_AT_HEADER] = str(time.time_ns())
        except Exception as exc:
            swallow("tracing a Celery publish", exc)

    def _mark_follow_up(self, headers: dict) -> None:
        """A retry of the running task, or the callback of the chord it completes, carries links."""
        run = _current_run.get()
        headers.pop(PREVIOUS_ATTEMPT_HEADER, None)
        headers.pop(CHORD_LINKS_HEADER, None)
        if run is None or not headers.get("id"):
            return
        if str(headers["id"]) == run.task_id:
            headers[PREVIOUS_ATTEMPT_HEADER] = traceparent_of(run.span)
        elif str(headers["id"]) == _chord_callback_id(run.request) and getattr(run.request, "group", None):
            headers[CHORD_LINKS_HEADER] = " ".join(pop_chord_header_runs(str(run.request.group)))

    def _after_publish(self, headers: dict | None = None, **kwargs: Any) -> None:
        pending = _pending_publish.get()
        if pending is not None and (headers is None or headers is pending.headers):
            _pending_publish.set(None)
            pending.span.end()

    def _publish_failed(self, headers: dict, exc: BaseException) -> None:
        """The publish of the message with ``headers`` raised (``sender.py``): an ERROR span ending now."""
        pending = _pending_publish.get()
        if pending is None or pending.headers is not headers:
            return  # it failed before before_task_publish, or made no span
        _pending_publish.set(None)
        try:
            _record_error(pending.span, exc)
        finally:
            pending.span.end()

    # -- running -------------------------------------------------------------

    def _links(self, request: Any) -> list[trace.Link]:
        links = []
        previous = span_context_of(getattr(request, PREVIOUS_ATTEMPT_HEADER, None))
        if previous is not None:
            links.append(trace.Link(previous, {MESSAGING_LINK_SOURCE: "previous_attempt"}))
        chord_links = getattr(request, CHORD_LINKS_HEADER, None)
        if isinstance(chord_links, str):
            for traceparent in chord_links.split()[:MAX_CHORD_LINKS]:
                header = span_context_of(traceparent)
                if header is not None:
                    links.append(trace.Link(header, {MESSAGING_LINK_SOURCE: "chord_header"}))
        return links

    def _prerun(self, task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None,
                **extra: Any) -> None:
        with guarded("starting a Celery task span"):
            now_ns = time.time_ns()
            request = getattr(task, "request", None)
            # Eager calls (task.apply(), CELERY_TASK_ALWAYS_EAGER) carry no headers:
            # they continue the caller's current context instead.
            parent = propagate.extract(request, getter=REQUEST_GETTER, context=context.get_current())
            delivery = getattr(request, "delivery_info", None) or {}
            queue = str(delivery.get("routing_key") or "")
            retries = int(getattr(request, "retries", 0) or 0)
            attributes = {
                MESSAGING_SYSTEM: system_of_app(task.app),
                MESSAGING_OPERATION_TYPE: "process",
                MESSAGING_OPERATION_NAME: "process",
                CELERY_TASK_NAME: task.name,
                MESSAGING_MESSAGE_ID: str(task_id),
                MESSAGING_DESTINATION_NAME: queue,
                CELERY_TASK_RETRIES: retries,
                CELERY_TASK_ATTEMPT: retries + 1,
                **wait_attributes(request, now_ns),
            }
            if self.record_args is not None and self.record_args.search(task.name):
                attributes[CELERY_TASK_ARGS] = privacy.bounded_repr(tuple(args or ()))
                attributes[CELERY_TASK_KWARGS] = privacy.bounded_repr(dict(kwargs or {}))
            links = self._links(request)
            if _matches(task.name, self._new_trace_tasks) or _matches(queue, self._new_trace_queues):
                publisher = trace.get_current_span(parent).get_span_context()
                parent, publisher_links = new_trace_linked_to(publisher, "publisher")
                links = publisher_links + links
            span = provider.get_tracer().start_span(
                f"process {task.name}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes,
                links=links or None, start_time=now_ns,
            )
            run = Run(str(task_id), request, span)
            run.var_token = _current_run.set(run)
            run.otel_token = attach(with_span(span, parent))
            run.opened_work = work.begin(span)
            if getattr(request, "chord", None) and getattr(request, "group", None) and not request.is_eager:
                record_chord_header_run(str(request.group), str(task_id), traceparent_of(span))

    def _postrun(self, task_id: str | None = None, state: str | None = None, retval: Any = None,
                 **kwargs: Any) -> None:
        run = _current_run.get()
        if run is None or run.task_id != str(task_id):
            return
        if state is None and celery_lifecycle.main_process_reports_interrupted_tasks():
            # The pool is killing this child mid-task (hard time limit, revoke with
            # terminate=True); the main process ends this task's span (celery_lifecycle).
            detach(run.otel_token)
            _current_run.reset(run.var_token)
            return
        try:
            with guarded("ending a Celery task span"):
                work.end(run.opened_work)
                if state:
                    run.span.set_attribute(CELERY_TASK_STATE, state)
                if state == "REJECTED" and isinstance(retval, BaseException):
                    _record_error(run.span, retval)
        finally:
            run.span.end()  # whatever failed above
            detach(run.otel_token)
            _current_run.reset(run.var_token)

    def _failure(self, task_id: str | None = None, exception: BaseException | None = None, **kwargs: Any) -> None:
        run = _current_run.get()
        if run is None or run.task_id != str(task_id) or exception is None:
            return
        with guarded("recording a Celery task failure"):
            _record_error(run.span, exception)

    def _retry(self, request: Any = None, reason: Any = None, **kwargs: Any) -> None:
        run = _current_run.get()
        if run is not None and run.task_id == str(getattr(request, "id", "")):
            with guarded("recording a Celery task retry"):
                run.span.add_event("retry", {"reason": str(reason)[:500]})

    def _unknown(self, name: str | None = None, id: str | None = None, message: Any = None,
                 exc: BaseException | None = None, **kwargs: Any) -> None:
        self._undeliverable(message, exc, name or "unknown", id)

    def _rejected(self, message: Any = None, exc: BaseException | None = None, **kwargs: Any) -> None:
        headers = getattr(message, "headers", None) or {}
        self._undeliverable(message, exc, str(headers.get("task") or "unknown"), headers.get("id"))

    def _undeliverable(self, message: Any, exc: BaseException | None, name: str, task_id: Any) -> None:
        """A message the worker cannot run (unknown task, undecodable): an ERROR span in its trace."""
        with guarded("tracing an undeliverable Celery message"):
            headers = getattr(message, "headers", None) or {}
            parent = propagate.extract(headers, getter=CARRIER, context=context.Context())
            delivery = getattr(message, "delivery_info", None) or {}
            attributes = {
                MESSAGING_SYSTEM: messaging_system(message),
                MESSAGING_OPERATION_TYPE: "process",
                MESSAGING_OPERATION_NAME: "process",
                CELERY_TASK_NAME: name,
                MESSAGING_DESTINATION_NAME: str(delivery.get("routing_key") or ""),
                CELERY_TASK_STATE: "REJECTED",
            }
            if task_id:
                attributes[MESSAGING_MESSAGE_ID] = str(task_id)
            span = provider.get_tracer().start_span(f"process {name}", context=parent, kind=SpanKind.CONSUMER,
                                                    attributes=attributes)
            if exc is not None:
                _record_error(span, exc)
            else:
                span.set_status(Status(StatusCode.ERROR, "message rejected"))
            span.end()


integration = CeleryIntegration()
