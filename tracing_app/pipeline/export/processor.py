"""``ExportProcessor``: ends spans into a bounded queue, exports them from one thread per process.

Why not the SDK's ``BatchSpanProcessor`` (1.45): its ``force_flush()`` ignores
its timeout and its ``shutdown()`` waits for the exporter's own retry sleeps
(opentelemetry-python#4568, #4555; measured 28-50 s with the collector down),
it drops spans without telling anyone how many, it encodes with the slower SDK
encoder, and it cannot retry by the OTLP rules because the exporter retries
inside ``export()``. Here:

* ``on_end`` (the request's or task's thread) only appends to a deque: no lock,
  no encoding. A full queue (``BATCH_MAX_QUEUE_SIZE``) drops the span and counts it.
* One daemon thread per process encodes batches and sends them with the OTLP
  retry rules: 429/502/503/504 and connection failures are retried with
  exponential backoff and full jitter, ``Retry-After`` is honoured, anything
  else is final. The backoff is kept across batches until an export succeeds,
  so a down collector sees one request per backoff step per process, not a storm.
  A batch that cannot be sent within ``BATCH_EXPORT_TIMEOUT`` is dropped and counted.
* An outage is logged once when it starts and once when export recovers, with
  the number of spans dropped in between.
* ``force_flush`` and ``shutdown`` wait at most their timeout (``SHUTDOWN_TIMEOUT``
  by default); what is still unsent at the end of ``shutdown`` is counted as dropped.
  At shutdown a batch gets one more attempt without waiting out the backoff and no
  retry after it, so a process exits at once when the collector refuses connections.
* Fork: the child starts with an empty queue (the parent exports what it ended),
  fresh locks, no thread (started on its first span) and no transport (built in
  the child, so a gRPC channel is never shared with the parent).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, set_value
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from tracing_app.pipeline.export.otlp_http import Outcome

logger = logging.getLogger("tracing_app")

BACKOFF_INITIAL = 0.5  # seconds before the first retry (before jitter)
BACKOFF_MAX = 30.0  # the backoff never grows beyond this
QUEUE_FULL_REPORT_EVERY = 60.0  # seconds between "queue full" warnings while healthy


def hand_over_gil() -> None:
    """Sleep long enough (0.1 ms) that a thread waiting for the GIL surely takes it:
    ``sleep(0)`` releases it too, but usually takes it back before a waiter wakes."""
    time.sleep(0.0001)


class Transport(Protocol):
    """Turns a batch into a payload once, then sends that payload (maybe several times)."""

    endpoint: str

    def encode(self, spans: Sequence[ReadableSpan], pause: Callable[[], None] | None = None) -> Any:
        """``pause()``, if given, is called now and then while encoding (see ``ExportProcessor._pause``)."""

    def send(self, payload: Any, timeout: float) -> Outcome: ...

    def close(self) -> None: ...


@dataclasses.dataclass
class ExportStats:
    """Counters of this process since start (or since fork)."""

    exported: int = 0
    dropped_queue_full: int = 0
    dropped_export_failed: int = 0
    dropped_at_shutdown: int = 0
    failed_attempts: int = 0
    queued: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_queue_full + self.dropped_export_failed + self.dropped_at_shutdown


class ExportProcessor(SpanProcessor):
    def __init__(
        self,
        transport_factory: Callable[[], Transport],
        *,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay: float = 5.0,
        export_timeout: float = 30.0,
        request_timeout: float = 10.0,
        shutdown_timeout: float = 3.0,
        sleep: Callable[[threading.Event, float], bool] | None = None,
    ) -> None:
        self._transport_factory = transport_factory
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = min(max_export_batch_size, max_queue_size)
        self.schedule_delay = schedule_delay
        self.export_timeout = export_timeout
        self.request_timeout = request_timeout
        self.shutdown_timeout = shutdown_timeout
        self._sleep = sleep or (lambda event, seconds: event.wait(seconds))
        self._is_shut_down = False
        self._reset()
        reinit = weakref.WeakMethod(self._reset)
        os.register_at_fork(after_in_child=lambda: (method := reinit()) and method())

    def _reset(self) -> None:
        """Fresh per-process state: at construction and in a forked child."""
        self.pid = os.getpid()
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._lock = threading.Lock()  # thread start, drop counting, flush bookkeeping
        self._batch_done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()  # the export thread ends
        self._hurry = threading.Event()  # shutdown began: cut backoff short, one last attempt per batch
        self._closing = False
        self._thread: threading.Thread | None = None
        self._transport: Transport | None = None
        self._transport_lock = threading.Lock()
        self._transport_error: str | None = None
        self._in_flight = 0
        self._backoff_step = 0
        self._not_before = 0.0
        self._server_set_wait = False  # _not_before comes from the collector's Retry-After
        self._outage_since: float | None = None
        self._outage_dropped = 0
        self._last_failure: Outcome | None = None
        self._queue_full_reported = 0.0
        self._queue_full_since_report = 0
        self.stats = ExportStats()

    # -- the request thread's side: cheap ---------------------------------------

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        queue = self._queue
        if len(queue) >= self.max_queue_size or self._is_shut_down:
            self._count_drop_on_end()
            return
        queue.append(span)
        if self._thread is None:
            self._start_thread()
        elif len(queue) >= self.max_export_batch_size and not self._wake.is_set():
            self._wake.set()

    def _count_drop_on_end(self) -> None:
        with self._lock:
            if self._is_shut_down:
                self.stats.dropped_at_shutdown += 1
                return
            self.stats.dropped_queue_full += 1
            if self._outage_since is not None:
                self._outage_dropped += 1
                return
            self._queue_full_since_report += 1
            now = time.monotonic()
            if now - self._queue_full_reported >= QUEUE_FULL_REPORT_EVERY:
                logger.warning(
                    "tracing_app: span queue full (BATCH_MAX_QUEUE_SIZE=%d), %d span(s) dropped; spans are "
                    "ended faster than %s accepts them", self.max_queue_size, self._queue_full_since_report,
                    self.endpoint,
                )
                self._queue_full_reported, self._queue_full_since_report = now, 0

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None or self._is_shut_down:
                return
            self._thread = threading.Thread(target=self._run, name="tracing_app-export", daemon=True)
            self._thread.start()

    # -- the export thread ---------------------------------------------------------

    @property
    def endpoint(self) -> str:
        transport = self._transport
        return transport.endpoint if transport is not None else "the collector"

    def transport(self) -> Transport | None:
        """This process's transport, built on first use; None (and ``transport_error``) if it cannot be."""
        if self._transport is None and self._transport_error is None:
            with self._transport_lock:
                if self._transport is None and self._transport_error is None:
                    try:
                        self._transport = self._transport_factory()
                    except Exception as exc:  # a bad endpoint, a missing gRPC package: reported, never raised
                        self._transport_error = f"{type(exc).__name__}: {exc}"
        return self._transport

    @property
    def transport_error(self) -> str | None:
        return self._transport_error

    def _run(self) -> None:
        # Our own HTTP calls must not be traced by a user's urllib/http.client instrumentation.
        attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        while not self._stop.is_set():
            self._wake.wait(self.schedule_delay)
            self._wake.clear()
            while self._queue and not self._stop.is_set():
                self._export_one_batch()

    def _export_one_batch(self) -> None:
        queue, batch = self._queue, []
        with self._lock:
            while queue and len(batch) < self.max_export_batch_size:
                batch.append(queue.popleft())
            self._in_flight = len(batch)
        try:
            sent = self._deliver(batch)
        except Exception:
            logger.exception("tracing_app: exporting %d span(s) failed unexpectedly; they are dropped", len(batch))
            sent = False
        with self._lock:
            if self._in_flight:  # zero when shutdown already counted them
                if sent:
                    self.stats.exported += len(batch)
                else:
                    self.stats.dropped_export_failed += len(batch)
                    if self._outage_since is not None:
                        self._outage_dropped += len(batch)
            self._in_flight = 0
            self._batch_done.notify_all()

    def _deliver(self, batch: list[ReadableSpan]) -> bool:
        transport = self.transport()
        if transport is None:
            return False
        payload = transport.encode(batch, self._pause)
        deadline = time.monotonic() + self.export_timeout
        while True:
            wait = self._not_before - time.monotonic()
            if wait > 0 and not self._closing:
                if time.monotonic() + wait > deadline:
                    if self._server_set_wait:
                        return False  # the collector's Retry-After outlasts this batch's time
                    # Our own backoff outlasts this batch's time: one last attempt at the end
                    # of it rather than dropping the batch untried, so spans waiting when the
                    # collector comes back are sent. At most one request per batch: no storm.
                    wait = max(0.0, deadline - self.request_timeout - time.monotonic())
                self._sleep(self._hurry, wait)  # shutdown cuts the wait short for one last attempt
                if self._stop.is_set():
                    return False
            timeout = min(self.request_timeout, max(0.05, deadline - time.monotonic()))
            outcome = transport.send(payload, timeout)
            if outcome.ok:
                self._recovered()
                return True
            self.stats.failed_attempts += 1
            self._failed(outcome)
            if not outcome.retryable or self._closing:
                return False  # final, or shutting down: no more retries, the process is leaving
            # Exponential backoff with full jitter; kept across batches until an export succeeds.
            backoff = random.uniform(0, min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** self._backoff_step))
            self._backoff_step = min(self._backoff_step + 1, 16)
            self._server_set_wait = outcome.retry_after is not None and outcome.retry_after >= backoff
            if outcome.retry_after is not None:
                backoff = max(backoff, outcome.retry_after)
            self._not_before = time.monotonic() + backoff
            if self._not_before > deadline:
                return False

    def _pause(self) -> None:
        # Encoding is pure Python and holds the GIL: a request thread that wants it meanwhile
        # waits up to the interpreter's 5 ms switch interval, a stall in its latency. While
        # the queue is short (under an eighth of a batch) the encoder sleeps briefly every few
        # spans so that a waiting thread takes the GIL at once. Not when spans pile up faster:
        # after a pause a busy thread keeps the GIL for the whole interval, and pausing while
        # up to a batch waited cut the span pipeline's sustained rate from 16000 to 12300/s.
        if len(self._queue) < self.max_export_batch_size // 8:
            hand_over_gil()

    def _failed(self, outcome: Outcome) -> None:
        self._last_failure = outcome
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self._outage_dropped = 0
            logger.warning(
                "tracing_app: cannot export spans: %s. Requests and tasks are not affected; spans are retried "
                "for up to %gs each and dropped (counted) after that or when %d are waiting",
                outcome.describe(), self.export_timeout, self.max_queue_size,
            )

    def _recovered(self) -> None:
        self._backoff_step = 0
        self._not_before = 0.0
        self._server_set_wait = False
        if self._outage_since is not None:
            logger.warning(
                "tracing_app: span export to %s recovered after %.1fs; %d span(s) were dropped during the outage",
                self.endpoint, time.monotonic() - self._outage_since, self._outage_dropped,
            )
            self._outage_since = None
            self._outage_dropped = 0

    # -- flush and shutdown: bounded -------------------------------------------------

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export what has ended so far; wait at most the timeout. True when all of it was sent."""
        timeout = self.shutdown_timeout if timeout_millis is None else timeout_millis / 1000.0
        deadline = time.monotonic() + timeout
        if not self._queue and not self._in_flight:
            return True
        if self._thread is None:
            self._start_thread()
        with self._lock:
            while self._queue or self._in_flight:
                self._wake.set()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._batch_done.wait(min(remaining, 0.1))
        return True

    def shutdown(self, timeout_millis: int | None = None) -> None:
        """Flush for at most ``SHUTDOWN_TIMEOUT``, then stop; the rest is counted as dropped."""
        if self._is_shut_down:
            return
        self._closing = True
        self._hurry.set()
        flushed = self.force_flush(timeout_millis)
        with self._lock:
            self._is_shut_down = True
            self._stop.set()
            self._wake.set()
            unsent = len(self._queue) + self._in_flight
            self._queue.clear()
            self._in_flight = 0
            self.stats.dropped_at_shutdown += unsent
        if not flushed and unsent:
            reason = self._last_failure.describe() if self._last_failure else "the collector did not answer in time"
            logger.warning(
                "tracing_app: %d span(s) not exported at shutdown (bound: SHUTDOWN_TIMEOUT=%gs): %s",
                unsent, self.shutdown_timeout if timeout_millis is None else timeout_millis / 1000.0, reason,
            )
        elif self._outage_dropped:
            logger.warning("tracing_app: %d span(s) were dropped while %s was unreachable",
                           self._outage_dropped, self.endpoint)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(0.2)
            if thread.is_alive():
                return  # still inside a request to a silent collector: a daemon thread, left to die with us
        transport = self._transport
        if transport is not None:
            transport.close()


class SdkExporterTransport:
    """An SDK ``SpanExporter`` (gRPC, console) behind our queue and bounds.

    The SDK's gRPC exporter retries UNAVAILABLE and friends itself, within its
    own timeout, so a failure here is final. It is built in the process that
    uses it (see ``ExportProcessor.transport``): a gRPC channel inherited
    through fork hangs.
    """

    def __init__(self, exporter: Any, endpoint: str) -> None:
        self.exporter = exporter
        self.endpoint = endpoint

    def encode(self, spans: Sequence[ReadableSpan], pause: Callable[[], None] | None = None) -> Sequence[ReadableSpan]:
        return spans

    def send(self, payload: Sequence[ReadableSpan], timeout: float) -> Outcome:
        from opentelemetry.sdk.trace.export import SpanExportResult

        if self.exporter.export(payload) is SpanExportResult.SUCCESS:
            return Outcome(ok=True)
        return Outcome(False, "export", f"{type(self.exporter).__name__} could not export to {self.endpoint}")

    def close(self) -> None:
        self.exporter.shutdown()
