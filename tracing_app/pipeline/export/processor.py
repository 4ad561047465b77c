"""``ExportProcessor``: ends spans into a bounded queue, exports them from one thread per process.

Why not the SDK's ``BatchSpanProcessor`` (1.45): its ``force_flush()`` ignores
its timeout and its ``shutdown()`` waits for the exporter's own retry sleeps
(opentelemetry-python#4568, #4555; measured 28-50 s with the collector down),
it drops spans without telling anyone how many, it batches by count only (a batch
of long SQL statements can be over a collector's size limit, and all of it is
lost), it encodes with the slower SDK encoder, and it cannot retry by the OTLP
rules because the exporter retries inside ``export()``. Here:

* ``on_end`` (the request's or task's thread) appends to a deque under a short
  lock, with an estimate of the span's encoded size: no encoding. A full queue
  (``BATCH_MAX_QUEUE_SIZE`` spans or ``BATCH_MAX_QUEUE_BYTES`` bytes) drops the
  span and counts it.
* One daemon thread per process takes batches of at most ``BATCH_MAX_EXPORT_SIZE``
  spans, encodes them into requests of at most ``BATCH_MAX_EXPORT_BYTES`` bytes
  each (a span over that on its own is dropped as ``too_large``) and sends them
  with the OTLP retry rules: 429/502/503/504, the retryable gRPC codes and
  connection failures are retried with exponential backoff and full jitter,
  ``Retry-After`` is honoured, anything else is final. The backoff is kept across
  batches until an export succeeds, so a down collector sees one request per
  backoff step per process, not a storm. What a batch cannot send within
  ``BATCH_EXPORT_TIMEOUT`` is dropped as ``timed_out``.
* A request refused for its size (HTTP 413, gRPC RESOURCE_EXHAUSTED "larger than
  max") is split in two and each half sent, down to single spans. Not when it is
  smaller than a request the collector accepted before, or than ``SPLIT_FLOOR``:
  then size is not the reason, and splitting would only multiply requests.
* Every span that ends is accounted for: ``ExportStats.ended == exported +
  dropped + pending``, each drop counted with its reason (``ExportStats``).
* An outage is logged once when it starts, and once when it ends (export
  recovers, or the process shuts down) with what it cost, by reason. When
  nothing listens on a loopback address (development without a collector) the
  start is the only line.
* ``force_flush`` and ``shutdown`` wait at most their timeout (``SHUTDOWN_TIMEOUT``
  by default); what is still unsent at the end of ``shutdown`` is dropped as
  ``shutdown``. At shutdown a batch gets one more attempt without waiting out the
  backoff and no retry after it, so a process exits at once when the collector
  refuses connections.
* Fork: the child starts with an empty queue (the parent exports what it ended),
  zeroed counters, fresh locks, no thread (started on its first span) and no
  transport (built in the child, so a gRPC channel is never shared with the parent).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import random
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import TraceFlags

from tracing_app.context.w3c import TRACE_FLAGS
from tracing_app.pipeline.export.otlp_encoding import SPAN_FIXED_BYTES, Chunk, estimated_size
from tracing_app.pipeline.export.outcome import Outcome

logger = logging.getLogger("tracing_app")

BACKOFF_INITIAL = 0.5  # seconds before the first retry (before jitter)
BACKOFF_MAX = 30.0  # the backoff never grows beyond this
QUEUE_FULL_REPORT_EVERY = 60.0  # seconds between "queue full" warnings while healthy
# A request refused as too large is split only above this size: no collector limit
# is this low (nginx's smallest default is 1 MiB), so a smaller refusal is about
# something else (a proxy rejecting everything) and is final.
SPLIT_FLOOR = 64 * 1024
DROP_REASONS = ("queue_full", "rejected", "partially_rejected", "timed_out", "shutdown", "too_large",
                "no_exporter", "error")


def hand_over_gil() -> None:
    """Sleep long enough (0.1 ms) that a thread waiting for the GIL surely takes it:
    ``sleep(0)`` releases it too, but usually takes it back before a waiter wakes."""
    time.sleep(0.0001)


class Transport(Protocol):
    """Turns a batch into requests once, then sends each request (maybe several times)."""

    endpoint: str

    def encode(self, spans: Sequence[ReadableSpan], max_bytes: int,
               pause: Callable[[], None] | None = None) -> tuple[list[Chunk], list[ReadableSpan]]:
        """Requests of at most ``max_bytes`` each, and the spans too large for any.
        ``pause()``, if given, is called now and then while encoding (see ``ExportProcessor._pause``)."""

    def send(self, payload: Any, timeout: float) -> Outcome: ...

    def close(self) -> None: ...


@dataclasses.dataclass
class ExportStats:
    """Span counters of one process, since it started (or forked). ``tracing_app.export_stats()``.

    ``ended`` counts sampled spans that ended; each of them is, at any moment, exactly one of
    ``exported`` (the collector accepted it), ``pending`` (queued or being sent) or dropped,
    with a reason: ``ended == exported + dropped + pending``. After ``shutdown()`` nothing is
    pending. The reasons (``dropped_by_reason``):

    * ``queue_full``: the queue held BATCH_MAX_QUEUE_SIZE spans or BATCH_MAX_QUEUE_BYTES bytes;
    * ``rejected``: the collector answered with a final error (HTTP 400/401/404/500, gRPC
      INVALID_ARGUMENT, ...);
    * ``partially_rejected``: the collector accepted the request but its ``partial_success``
      named these spans as rejected;
    * ``timed_out``: retryable failures (refused, 503, ...) outlasted BATCH_EXPORT_TIMEOUT;
    * ``shutdown``: still unsent when the process shut down (SHUTDOWN_TIMEOUT), or ended after;
    * ``too_large``: one span alone is over BATCH_MAX_EXPORT_BYTES, or was refused as too large;
    * ``no_exporter``: this process could not build its exporter (a bad endpoint; logged);
    * ``error``: an unexpected error in tracing_app while exporting (logged).

    ``failed_attempts`` counts requests that failed (retried ones included),
    ``queued_bytes`` the estimated encoded size of the queue.
    """

    ended: int = 0
    exported: int = 0
    pending: int = 0
    dropped_queue_full: int = 0
    dropped_rejected: int = 0
    dropped_partially_rejected: int = 0
    dropped_timed_out: int = 0
    dropped_shutdown: int = 0
    dropped_too_large: int = 0
    dropped_no_exporter: int = 0
    dropped_error: int = 0
    failed_attempts: int = 0
    queued_bytes: int = 0

    @property
    def dropped(self) -> int:
        return sum(getattr(self, f"dropped_{reason}") for reason in DROP_REASONS)

    @property
    def dropped_by_reason(self) -> dict[str, int]:
        """Every reason, in a fixed order, zero or not."""
        return {reason: getattr(self, f"dropped_{reason}") for reason in DROP_REASONS}

    def describe(self) -> str:
        drops = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in self.dropped_by_reason.items()
                          if count)
        return (f"ended {self.ended} = exported {self.exported} + dropped {self.dropped}"
                f"{f' ({drops})' if drops else ''} + pending {self.pending}")


def _loopback(endpoint: str) -> bool:
    import ipaddress
    import urllib.parse

    host = urllib.parse.urlsplit(endpoint if "//" in endpoint else f"//{endpoint}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _this_process() -> str:
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    command = f" {sys.argv[1]}" if program == "manage.py" and len(sys.argv) > 1 else ""
    return f"pid {os.getpid()}, {program}{command}"


class ExportProcessor(SpanProcessor):
    def __init__(
        self,
        transport_factory: Callable[[], Transport],
        *,
        max_queue_size: int = 2048,
        max_queue_bytes: int = 8 * 1024 * 1024,
        max_export_batch_size: int = 512,
        max_export_bytes: int = 3 * 1024 * 1024,
        schedule_delay: float = 5.0,
        export_timeout: float = 30.0,
        request_timeout: float = 10.0,
        shutdown_timeout: float = 3.0,
        endpoint: str = "",
        sleep: Callable[[threading.Event, float], bool] | None = None,
    ) -> None:
        self._transport_factory = transport_factory
        self.max_queue_size = max_queue_size
        self.max_queue_bytes = max_queue_bytes
        self.max_export_batch_size = min(max_export_batch_size, max_queue_size)
        self.max_export_bytes = max_export_bytes
        self.schedule_delay = schedule_delay
        self.export_timeout = export_timeout
        self.request_timeout = request_timeout
        self.shutdown_timeout = shutdown_timeout
        self.configured_endpoint = endpoint
        # Nothing listening on this machine is development without a collector: one line, not two.
        self._quiet_when_refused = _loopback(endpoint)
        self._sleep = sleep or (lambda event, seconds: event.wait(seconds))
        self._is_shut_down = False
        self._reset()
        reinit = weakref.WeakMethod(self._reset)
        os.register_at_fork(after_in_child=lambda: (method := reinit()) and method())

    def _reset(self) -> None:
        """Fresh per-process state: at construction and in a forked child."""
        self.pid = os.getpid()
        self._queue: collections.deque[tuple[ReadableSpan, int]] = collections.deque()
        self._queued_bytes = 0
        self._lock = threading.Lock()  # queue and counters, thread start, flush bookkeeping
        self._batch_done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()  # the export thread ends
        self._hurry = threading.Event()  # shutdown began: cut backoff short, one last attempt per batch
        self._closing = False
        self._flush_requested = False
        self._thread: threading.Thread | None = None
        self._transport: Transport | None = None
        self._transport_lock = threading.Lock()
        self._transport_error: str | None = None
        self._in_flight = 0
        self._backoff_step = 0
        self._not_before = 0.0
        self._server_set_wait = False  # _not_before comes from the collector's Retry-After
        self._largest_accepted = 0  # bytes of the largest request the collector accepted
        self._outage_since: float | None = None
        self._outage_quiet = False
        self._outage_start: ExportStats | None = None
        self._last_failure: Outcome | None = None
        self._queue_full_reported = 0.0
        self._queue_full_since_report = 0
        self._reported: set[str] = set()  # one-time warnings already given (too large, partial success)
        self._dropped_before_flush = 0
        self.stats = ExportStats()

    # -- the request thread's side: cheap ---------------------------------------

    # No on_start: the base class's does nothing, and FastTracer's Dispatch then calls none.

    def on_end(self, span: ReadableSpan) -> None:
        if not span._context[TRACE_FLAGS] & TraceFlags.SAMPLED:  # noqa: SLF001  the SpanContext tuple by position
            return
        try:
            size = estimated_size(span)
        except Exception:  # a ReadableSpan of another make: never fail the host's span.end() for an estimate
            size = SPAN_FIXED_BYTES
        queue = self._queue
        with self._lock:
            stats = self.stats
            stats.ended += 1
            if self._is_shut_down:
                stats.dropped_shutdown += 1
                return
            if len(queue) >= self.max_queue_size or self._queued_bytes + size > self.max_queue_bytes:
                stats.dropped_queue_full += 1
                full = True
            else:
                queue.append((span, size))
                self._queued_bytes += size
                full = False
        if full:
            self._report_queue_full()
        elif self._thread is None:
            self._start_thread()
        elif self._batch_ready() and not self._wake.is_set():
            self._wake.set()

    def _report_queue_full(self) -> None:
        if self._outage_since is not None:
            return  # the outage's summary counts them
        self._queue_full_since_report += 1
        now = time.monotonic()
        if now - self._queue_full_reported >= QUEUE_FULL_REPORT_EVERY:
            count, self._queue_full_reported, self._queue_full_since_report = self._queue_full_since_report, now, 0
            logger.warning(
                "tracing_app: span queue full (BATCH_MAX_QUEUE_SIZE=%d spans, BATCH_MAX_QUEUE_BYTES=%d), %d span(s) "
                "dropped; spans are ended faster than %s accepts them", self.max_queue_size, self.max_queue_bytes,
                count, self.endpoint,
            )

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
        return transport.endpoint if transport is not None else (self.configured_endpoint or "the collector")

    def transport(self) -> Transport | None:
        """This process's transport, built on first use; None (and ``transport_error``) if it cannot be.

        A failure is logged once per process, here, whichever kind of process it is.
        """
        if self._transport is None and self._transport_error is None:
            with self._transport_lock:
                if self._transport is None and self._transport_error is None:
                    try:
                        self._transport = self._transport_factory()
                    except Exception as exc:  # a bad endpoint, a missing gRPC package: reported, never raised
                        self._transport_error = f"{type(exc).__name__}: {exc}"
                        logger.warning(
                            "tracing_app: this process (%s) has no working span exporter, its spans will be lost "
                            "(counted as no_exporter in tracing_app.export_stats()): its exporter could not be "
                            "built: %s", _this_process(), self._transport_error,
                        )
        return self._transport

    @property
    def transport_error(self) -> str | None:
        return self._transport_error

    def snapshot(self) -> ExportStats:
        """A consistent copy of ``stats`` with ``pending`` and ``queued_bytes`` filled in."""
        with self._lock:
            return dataclasses.replace(self.stats, pending=len(self._queue) + self._in_flight,
                                       queued_bytes=self._queued_bytes)

    def _run(self) -> None:
        # Our own HTTP calls must not be traced by a user's urllib/http.client instrumentation.
        attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        self.transport()  # a bad endpoint is reported when the first span ends, not a batch later
        while not self._stop.is_set():
            full = self._wake.wait(self.schedule_delay)
            self._wake.clear()
            if full and not self._flush_requested and not self._closing:
                # Woken by a full batch: send full batches only. Draining to empty sent a
                # stream of small batches (an HTTP request per few dozen spans) whenever spans
                # kept ending while one was sent, as a busy worker's do.
                while self._batch_ready() and not self._stop.is_set():
                    if not self._export_one_batch():
                        break
                continue
            # The schedule delay passed, or a flush or shutdown asked: all that is queued now.
            self._flush_requested = False
            due = len(self._queue)
            while due > 0 and self._queue and not self._stop.is_set():
                due -= self._export_one_batch()

    def _batch_ready(self) -> bool:
        return len(self._queue) >= self.max_export_batch_size or self._queued_bytes >= self.max_export_bytes

    def _export_one_batch(self) -> int:
        """Send the next batch (up to ``max_export_batch_size`` spans and ``max_export_bytes``);
        returns how many spans it took from the queue."""
        queue, batch = self._queue, []
        with self._lock:
            size = 0
            while queue and len(batch) < self.max_export_batch_size and (not batch or size < self.max_export_bytes):
                span, span_size = queue.popleft()
                batch.append(span)
                size += span_size
            self._queued_bytes -= size
            self._in_flight = len(batch)
        try:
            self._deliver(batch)
        except Exception:
            logger.exception("tracing_app: exporting %d span(s) failed unexpectedly; they are dropped", len(batch))
        finally:
            with self._lock:
                self._settle_locked(self._in_flight, "error")  # what _deliver did not account for
                self._batch_done.notify_all()
        return len(batch)

    def _settle(self, count: int, reason: str) -> None:
        """``count`` spans of the batch in flight are done: ``exported`` or dropped for ``reason``."""
        with self._lock:
            self._settle_locked(count, reason)

    def _settle_locked(self, count: int, reason: str) -> None:
        count = min(count, self._in_flight)  # zero once shutdown counted the batch as dropped
        if count <= 0:
            return
        self._in_flight -= count
        if reason == "exported":
            self.stats.exported += count
        else:
            setattr(self.stats, f"dropped_{reason}", getattr(self.stats, f"dropped_{reason}") + count)

    def _deliver(self, batch: list[ReadableSpan]) -> None:
        transport = self.transport()
        if transport is None:
            self._settle(len(batch), "no_exporter")
            return
        deadline = time.monotonic() + self.export_timeout
        chunks, too_large = transport.encode(batch, self.max_export_bytes, self._pause)
        if too_large:
            self._settle(len(too_large), "too_large")
            self._report_once("too_large", "tracing_app: %d span(s) dropped, each over BATCH_MAX_EXPORT_BYTES=%d "
                              "bytes on its own (long attribute values?)", len(too_large), self.max_export_bytes)
        pending = collections.deque(chunks)
        while pending:
            chunk = pending.popleft()
            outcome, reason = self._send(transport, chunk, deadline)
            spans = chunk.spans
            if outcome.ok:
                rejected = min(outcome.rejected, len(spans))
                self._settle(len(spans) - rejected, "exported")
                if rejected:
                    self._settle(rejected, "partially_rejected")
                    self._report_once("partial", "tracing_app: the collector accepted a request but rejected "
                                      "%d of its %d span(s): %s", rejected, len(spans), outcome.detail)
            elif reason == "split":
                half = len(spans) // 2
                smaller: list[Chunk] = []
                for part in (spans[:half], spans[half:]):
                    parts, alone = transport.encode(part, self.max_export_bytes)
                    smaller.extend(parts)
                    self._settle(len(alone), "too_large")
                pending.extendleft(reversed(smaller))
            else:
                self._settle(len(spans), reason)

    def _send(self, transport: Transport, chunk: Chunk, deadline: float) -> tuple[Outcome, str]:
        """Send one request, retrying by the OTLP rules until ``deadline``.

        Returns the last outcome and what became of the request: ``exported``, ``split``
        or a drop reason.
        """
        while True:
            wait = self._not_before - time.monotonic()
            if wait > 0 and not self._closing:
                if time.monotonic() + wait > deadline:
                    if self._server_set_wait:
                        # the collector's Retry-After outlasts this batch's time
                        return self._last_failure or Outcome(False), "timed_out"
                    # Our own backoff outlasts this batch's time: one last attempt at the end
                    # of it rather than dropping the batch untried, so spans waiting when the
                    # collector comes back are sent. At most one request per batch: no storm.
                    wait = max(0.0, deadline - self.request_timeout - time.monotonic())
                self._sleep(self._hurry, wait)  # shutdown cuts the wait short for one last attempt
                if self._stop.is_set():
                    return self._last_failure or Outcome(False), "shutdown"
            timeout = min(self.request_timeout, max(0.05, deadline - time.monotonic()))
            outcome = transport.send(chunk.payload, timeout)
            if outcome.ok:
                self._largest_accepted = max(self._largest_accepted, _size(chunk))
                self._recovered()
                return outcome, "exported"
            self.stats.failed_attempts += 1
            if self._is_shut_down:
                # A request shutdown left behind (a collector that did not answer in time): its
                # spans are counted and reported as shutdown drops; no outage to report now.
                return outcome, "shutdown"
            if outcome.too_large:
                return outcome, self._too_large(outcome, chunk)
            self._failed(outcome)
            if not outcome.retryable:
                return outcome, "rejected"
            if self._closing:
                return outcome, "shutdown"  # no more retries: the process is leaving
            # Exponential backoff with full jitter; kept across batches until an export succeeds.
            backoff = random.uniform(0, min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** self._backoff_step))
            self._backoff_step = min(self._backoff_step + 1, 16)
            self._server_set_wait = outcome.retry_after is not None and outcome.retry_after >= backoff
            if outcome.retry_after is not None:
                backoff = max(backoff, outcome.retry_after)
            self._not_before = time.monotonic() + backoff
            if self._not_before > deadline:
                return outcome, "timed_out"

    def _too_large(self, outcome: Outcome, chunk: Chunk) -> str:
        size, alone = _size(chunk), len(chunk.spans) == 1
        if size <= self._largest_accepted or (size <= SPLIT_FLOOR and not alone):
            # The collector took as much before, or no real limit is this low: not about size.
            self._failed(outcome)
            return "rejected"
        self._report_once("split", "tracing_app: the collector refused a request of %d bytes (%d spans) as too "
                          "large; it is sent in smaller parts: %s", size, len(chunk.spans), outcome.describe())
        return "too_large" if alone else "split"

    def _pause(self) -> None:
        # Encoding is pure Python and holds the GIL: a request thread that wants it meanwhile
        # waits up to the interpreter's 5 ms switch interval, a stall in its latency. While
        # the queue is short (under an eighth of a batch) the encoder sleeps briefly every few
        # spans so that a waiting thread takes the GIL at once. Not when spans pile up faster:
        # after a pause a busy thread keeps the GIL for the whole interval, and pausing while
        # up to a batch waited cut the span pipeline's sustained rate from 16000 to 12300/s.
        if len(self._queue) < self.max_export_batch_size // 8:
            hand_over_gil()

    def _report_once(self, what: str, message: str, *args: Any) -> None:
        level = logging.DEBUG if what in self._reported else logging.WARNING
        self._reported.add(what)
        logger.log(level, message, *args)

    def _failed(self, outcome: Outcome) -> None:
        self._last_failure = outcome
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self._outage_start = self.snapshot()
            self._outage_quiet = self._quiet_when_refused and outcome.kind == "refused"
            if self._outage_quiet:
                logger.warning(
                    "tracing_app: nothing listens at %s, spans of this process (%s) are dropped; start a collector "
                    "there, point OTLP_ENDPOINT at one, or set EXPORTER to 'none'. Counts: tracing_app.export_stats()",
                    self.endpoint, _this_process(),
                )
                return
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
            logger.warning("tracing_app: span export to %s recovered after %.1fs; %s", self.endpoint,
                           time.monotonic() - self._outage_since, self._outage_cost())
            self._outage_since = None

    def _outage_cost(self) -> str:
        """What the outage dropped, by reason, and this process's accounting."""
        now, start = self.snapshot(), self._outage_start or ExportStats()
        lost = {reason: count - start.dropped_by_reason[reason] for reason, count in now.dropped_by_reason.items()}
        by_reason = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in lost.items() if count)
        return (f"{sum(lost.values())} span(s) were dropped during the outage{f' ({by_reason})' if by_reason else ''}; "
                f"since start: {now.describe()}")

    # -- flush and shutdown: bounded -------------------------------------------------

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export what has ended so far; wait at most the timeout.

        True when it was all sent and no span was dropped since the previous flush;
        False when the time ran out or spans were dropped (no exporter, collector
        down, queue full...: ``tracing_app.export_stats()`` says why).
        """
        timeout = self.shutdown_timeout if timeout_millis is None else timeout_millis / 1000.0
        deadline = time.monotonic() + timeout
        if self._queue or self._in_flight:
            if self._thread is None:
                self._start_thread()
            with self._lock:
                while self._queue or self._in_flight:
                    self._flush_requested = True  # everything queued goes, not only full batches
                    self._wake.set()
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._thread is None:
                        return False
                    self._batch_done.wait(min(remaining, 0.1))
        with self._lock:
            dropped = self.stats.dropped
            nothing_lost, self._dropped_before_flush = dropped == self._dropped_before_flush, dropped
        return nothing_lost

    def shutdown(self, timeout_millis: int | None = None) -> None:
        """Flush for at most ``SHUTDOWN_TIMEOUT``, then stop; the rest is dropped as ``shutdown``."""
        if self._is_shut_down:
            return
        self._closing = True
        self._hurry.set()
        timeout = self.shutdown_timeout if timeout_millis is None else timeout_millis / 1000.0
        deadline = time.monotonic() + timeout
        self.force_flush(timeout_millis)
        with self._lock:
            self._is_shut_down = True
            self._stop.set()
            self._wake.set()
            unsent = len(self._queue) + self._in_flight
            self._queue.clear()
            self._queued_bytes = 0
            self._in_flight = 0
            self.stats.dropped_shutdown += unsent
        quiet = logging.DEBUG if self._outage_quiet and self._outage_since is not None else logging.WARNING
        if unsent and time.monotonic() >= deadline:
            reason = self._last_failure.describe() if self._last_failure else "the collector did not answer in time"
            logger.log(quiet, "tracing_app: %d span(s) not exported at shutdown (bound: SHUTDOWN_TIMEOUT=%gs): %s; %s",
                       unsent, timeout, reason, self.snapshot().describe())
        elif self._outage_since is not None:
            logger.log(quiet, "tracing_app: at shutdown %s was still unreachable; %s", self.endpoint,
                       self._outage_cost())
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(0.2)
            if thread.is_alive():
                return  # still inside a request to a silent collector: a daemon thread, left to die with us
        transport = self._transport
        if transport is not None:
            transport.close()


def _size(chunk: Chunk) -> int:
    payload = chunk.payload
    return len(payload) if isinstance(payload, (bytes, bytearray)) else 0


class SdkExporterTransport:
    """An SDK ``SpanExporter`` (the console's) behind our queue and bounds; a failure is final."""

    def __init__(self, exporter: Any, endpoint: str) -> None:
        self.exporter = exporter
        self.endpoint = endpoint

    def encode(self, spans: Sequence[ReadableSpan], max_bytes: int,
               pause: Callable[[], None] | None = None) -> tuple[list[Chunk], list[ReadableSpan]]:
        return [Chunk(list(spans), spans)], []  # an SDK exporter encodes itself, with no size limit

    def send(self, payload: Sequence[ReadableSpan], timeout: float) -> Outcome:
        from opentelemetry.sdk.trace.export import SpanExportResult

        if self.exporter.export(payload) is SpanExportResult.SUCCESS:
            return Outcome(ok=True)
        return Outcome(False, "export", f"{type(self.exporter).__name__} could not export to {self.endpoint}")

    def close(self) -> None:
        self.exporter.shutdown()
