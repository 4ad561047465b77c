"""Celery worker processes: flush before they exit, and a span for a task whose process was killed.

Installed and uninstalled with the Celery integration (``celery_signals``).

* ``worker_init`` / ``beat_init`` (the worker or beat starts, after Celery's Django
  fix-up ran ``django.setup()``): this process's role is ``worker`` or ``beat``, so its
  resource names it (``pipeline/resource.py``), whatever its command line looked like.
* ``worker_process_init`` (a prefork child starts): build this child's exporter
  now and warn once if it has none, instead of losing its spans silently.
* ``worker_process_shutdown`` (a prefork child exits: recycled by
  ``--max-tasks-per-child``, or at a warm shutdown): billiard ends the child with
  ``os._exit``, so atexit handlers never run; flush and stop here, bounded by
  ``SHUTDOWN_TIMEOUT``.
* ``worker_shutdown`` (the main process; with the solo and threads pools the
  tasks ran here): flush, bounded. atexit does the final shutdown.
* Hard time limit: the pool kills the child mid-task, so the child's task span
  never ends and is never exported. The main process learns of it only through
  the request's ``on_timeout`` callback (Celery sends no signal for it: the
  failure is reported with ``return_ok=True``, which skips ``task_failure``).
  ``task_received`` runs in the main process with the request before it is
  handed to the pool, so we wrap that one request's ``on_timeout`` (an instance
  attribute, nothing global is patched) and end an ERROR span for the task there,
  in the same trace as its publisher. A task terminated by ``revoke(terminate=True)``
  gets the same from ``task_revoked``; a task revoked (or expired) before it ran
  gets a CONSUMER span with state REVOKED, not an error, so its publisher's trace
  does not end at the send.
* Worker lost: a child that dies mid-task (killed by the kernel's OOM killer or a
  signal, ``os._exit``, ``sys.exit`` in the task) never sends ``task_postrun``, or
  sends it with state None, and exports nothing. The main process reports it to
  the request's ``on_failure`` (wrapped like ``on_timeout``) with ``WorkerLostError``,
  or with the ``SystemExit`` the child sent back: an ERROR span with that
  ``error.type`` there.

The child, if it still reaches ``task_postrun`` (state None: it was interrupted),
leaves the span to the main process, so each task has exactly one span.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import signals
from celery.exceptions import WorkerLostError
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracing_app.context.carriers import CARRIER
from tracing_app.pipeline import provider
from tracing_app.pipeline.resource import BEAT, WORKER, set_process_role
from tracing_app.safety import guarded
from tracing_app.semconv import (
    CELERY_TASK_NAME,
    CELERY_TASK_STATE,
    ERROR_TYPE,
    EXCEPTION_MESSAGE,
    EXCEPTION_TYPE,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
)

logger = logging.getLogger("tracing_app")

TIME_LIMIT_ERROR = "TimeLimitExceeded"
_SIGNALS = (
    ("worker_init", "_worker_starting"),
    ("beat_init", "_beat_starting"),
    ("worker_process_init", "_process_started"),
    ("worker_process_shutdown", "_process_exiting"),
    ("worker_shutdown", "_worker_exiting"),
    ("task_received", "_received"),
    ("task_revoked", "_revoked"),
)
ON_TIMEOUT_WRAPPED = "_tracing_app_on_timeout_wrapped"
_in_pool_child = False


def main_process_reports_interrupted_tasks() -> bool:
    """True in a prefork pool child: its main process ends the spans of tasks it kills."""
    return _in_pool_child


def install() -> None:
    for signal_name, function in _SIGNALS:
        getattr(signals, signal_name).connect(
            globals()[function], weak=False, dispatch_uid=f"tracing_app.lifecycle.{signal_name}"
        )


def uninstall() -> None:
    for signal_name, _ in _SIGNALS:
        getattr(signals, signal_name).disconnect(dispatch_uid=f"tracing_app.lifecycle.{signal_name}")


def _worker_starting(**kwargs: Any) -> None:
    with guarded("naming the worker process"):
        set_process_role(WORKER)


def _beat_starting(**kwargs: Any) -> None:
    with guarded("naming the beat process"):
        set_process_role(BEAT)


def _process_started(**kwargs: Any) -> None:
    global _in_pool_child
    _in_pool_child = True
    with guarded("checking the exporter of a new worker process"):
        problem = provider.exporter_problem()
        if problem is not None:
            logger.warning("tracing_app: this Celery worker process has no working span exporter, "
                           "its task spans will be lost: %s", problem)


def _process_exiting(**kwargs: Any) -> None:
    with guarded("flushing spans at worker process shutdown"):
        provider.shutdown()


def _worker_exiting(**kwargs: Any) -> None:
    with guarded("flushing spans at worker shutdown"):
        provider.force_flush()


def _received(request: Any = None, **kwargs: Any) -> None:
    if request is None or getattr(request, ON_TIMEOUT_WRAPPED, False):
        return
    original = request.on_timeout

    def on_timeout(soft: bool, timeout: float) -> None:
        try:
            if not soft:
                with guarded("recording a task killed by its hard time limit"):
                    record_time_limit_kill(request, timeout)
        finally:
            original(soft, timeout)

    original_on_failure = request.on_failure

    def on_failure(exc_info: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with guarded("recording a task whose worker process was lost"):
                if _lost_in_a_pool_child(request, exc_info):
                    exc = exc_info.exception
                    exc = getattr(exc, "exc", exc)  # billiard's ExceptionWithTraceback
                    # Never the exception's message (it could quote task data), only its type.
                    record_killed_task(request, type(exc).__qualname__,
                                       "the worker process running the task exited before it ended")
        finally:
            outcome = original_on_failure(exc_info, *args, **kwargs)
        return outcome

    request.on_timeout = on_timeout
    request.on_failure = on_failure
    setattr(request, ON_TIMEOUT_WRAPPED, True)


def _lost_in_a_pool_child(request: Any, exc_info: Any) -> bool:
    """The task ran in another process (a prefork child), which ended before its
    ``task_postrun`` could end the span: killed or exited (``WorkerLostError``), or
    ``sys.exit``/``KeyboardInterrupt`` raised in the task (the child reports that
    exception, then exits; its postrun came with state None and left the span to us).
    In the solo and threads pools the task ran here and postrun ended its span."""
    pid = getattr(request, "worker_pid", None)
    if pid is None or pid == os.getpid():
        return False
    exc = getattr(exc_info, "exception", None)
    exc = getattr(exc, "exc", exc)
    return isinstance(exc, WorkerLostError) or (isinstance(exc, BaseException) and not isinstance(exc, Exception))


def _revoked(sender: Any = None, request: Any = None, terminated: bool = False, signum: Any = None,
             expired: bool = False, **kwargs: Any) -> None:
    # ``request`` is the task's Context here (Request._announce_revoked), not the worker's Request.
    if request is None:
        return
    app = getattr(sender, "app", None)
    if terminated:
        with guarded("recording a task terminated by revoke"):
            record_killed_task(request, "Terminated", f"revoked and terminated by signal {signum}", app=app)
    else:
        with guarded("recording a revoked task"):
            record_revoked_task(request, expired, app=app)


def record_time_limit_kill(request: Any, timeout: float) -> None:
    record_killed_task(request, TIME_LIMIT_ERROR,
                       f"hard time limit ({timeout}s) exceeded; the worker process running the task was killed",
                       duration=timeout)


def _unrun_task_span(request: Any, state: str, app: Any = None, duration: float = 0.0) -> tuple[trace.Span, int]:
    """A CONSUMER span, in the publisher's trace, for a task the main process reports on; and now (ns).

    ``request`` is the worker's ``Request`` (headers in ``request_dict``, the task
    object as ``task``) or a task ``Context`` (headers as attributes, the name as ``task``)."""
    from tracing_app.integrations.celery.headers import REQUEST_GETTER
    from tracing_app.integrations.celery.transport import system_of_app

    request_dict = getattr(request, "request_dict", None)
    if isinstance(request_dict, dict):
        parent = propagate.extract(request_dict, getter=CARRIER)
    else:
        parent = propagate.extract(request, getter=REQUEST_GETTER)
    task = getattr(request, "task", None)
    name = str(getattr(request, "name", None) or (task if isinstance(task, str) else "unknown"))
    now_ns = time.time_ns()
    started = getattr(request, "time_start", None)
    start_ns = int(started * 1e9) if started else now_ns - int(duration * 1e9)
    delivery = getattr(request, "delivery_info", None) or {}
    span = provider.get_tracer().start_span(
        f"process {name}", context=parent, kind=SpanKind.CONSUMER, start_time=start_ns,
        attributes={
            MESSAGING_SYSTEM: system_of_app(app or getattr(task, "app", None)),
            MESSAGING_OPERATION_TYPE: "process",
            MESSAGING_OPERATION_NAME: "process",
            CELERY_TASK_NAME: name,
            MESSAGING_MESSAGE_ID: str(request.id),
            MESSAGING_DESTINATION_NAME: delivery.get("routing_key") or "",
            CELERY_TASK_STATE: state,
        },
    )
    return span, now_ns


def record_killed_task(request: Any, error_type: str, message: str, duration: float = 0.0, app: Any = None) -> None:
    """End, in this (the main) process, the span the killed child could not end."""
    span, now_ns = _unrun_task_span(request, "FAILURE", app, duration)
    span.set_attribute(ERROR_TYPE, error_type)
    span.add_event("exception", {EXCEPTION_TYPE: error_type, EXCEPTION_MESSAGE: message})
    span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"))
    span.end(end_time=now_ns)


def record_revoked_task(request: Any, expired: bool, app: Any = None) -> None:
    """A revoked (or expired) task the worker discarded unrun: state REVOKED, not an error
    (it was cancelled on purpose), so that its publisher's trace shows where the message went."""
    span, now_ns = _unrun_task_span(request, "REVOKED", app)
    span.add_event("revoked", {"reason": "expired" if expired else "revoked"})
    span.end(end_time=now_ns)
