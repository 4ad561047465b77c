"""Traces as terminal waterfalls, and deciding when a trace received over OTLP is finished.

``render_waterfall(spans)`` draws one trace: a header, then one line per span,
indented under its parent, with the service, the span name and kind, the
duration, and a bar showing when the span ran within the trace. Error spans are
marked with ``!`` and their status message.

``TraceAssembler`` groups spans arriving from several processes by trace id.
Nothing on the wire says that a trace is complete (a task may be published now
and run minutes later), so a trace counts as finished after a quiet period: no
new span for that trace id for ``quiet`` seconds. The quiet period has to be
longer than the exporters' batch delay (``OTEL_BSP_SCHEDULE_DELAY``, 5 s by
default) or a worker's spans arrive after their trace was printed; those late
spans are then printed as a continuation of the same trace id, never lost.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from tracing_app.devtools.records import Node, SpanRecord, build_trees

BAR_WIDTH = 30
SERVICE_WIDTH = 20
MIN_NAME_WIDTH = 46
MAX_REMEMBERED = 10_000  # printed trace ids kept to label late spans "(continued)"


@dataclasses.dataclass(frozen=True)
class TraceFilter:
    """Which finished traces are shown. Each filter looks at the whole trace, so a
    shown trace is always complete: ``service`` keeps traces with a span of that
    service, ``min_duration_ms`` traces at least that long, ``errors_only`` traces
    with an error span."""

    services: tuple[str, ...] = ()
    min_duration_ms: float = 0.0
    errors_only: bool = False

    def accepts(self, spans: Sequence[SpanRecord]) -> bool:
        if self.services and not any(span.service in self.services for span in spans):
            return False
        if self.errors_only and not any(span.error for span in spans):
            return False
        return trace_duration_ms(spans) >= self.min_duration_ms


def trace_duration_ms(spans: Sequence[SpanRecord]) -> float:
    if not spans:
        return 0.0
    return (max(s.end_ns for s in spans) - min(s.start_ns for s in spans)) / 1e6


def _bar(span: SpanRecord, start_ns: int, total_ns: int, width: int) -> str:
    if total_ns <= 0:
        return "█" * width
    first = int((span.start_ns - start_ns) * width / total_ns)
    last = int((span.end_ns - start_ns) * width / total_ns)
    first = min(max(first, 0), width - 1)
    last = min(max(last, first + 1), width)  # at least one cell, however short
    return " " * first + "█" * (last - first) + " " * (width - last)


def _duration(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.2f} ms"


def render_waterfall(spans: Sequence[SpanRecord], bar_width: int = BAR_WIDTH, continued: bool = False) -> str:
    """One trace as text. Spans whose parent is not among ``spans`` start their own tree."""
    start_ns = min(s.start_ns for s in spans)
    total_ns = max(s.end_ns for s in spans) - start_ns
    services = sorted({s.service for s in spans})
    errors = sum(1 for s in spans if s.error)
    title = "trace {} {}· {} span{} · {} · {}{}".format(
        spans[0].trace_id, "(continued) " if continued else "", len(spans), "" if len(spans) == 1 else "s",
        ", ".join(services), _duration(total_ns / 1e6), f" · {errors} error{'s' * (errors != 1)}" if errors else "",
    )
    lines = [title]

    rows: list[tuple[SpanRecord, str]] = []

    def walk(node: Node, depth: int) -> None:
        rows.append((node.span, "  " * depth + f"{node.span.name} [{node.span.kind}]"))
        for child in node.children:
            walk(child, depth + 1)

    for root in build_trees(spans):
        walk(root, 0)
    # The name column fits this trace's longest label, so durations and bars line up.
    name_width = max(MIN_NAME_WIDTH, *(len(label) for _, label in rows))
    for span, label in rows:
        line = (f"{'!' if span.error else ' '} {span.service[:SERVICE_WIDTH]:<{SERVICE_WIDTH}} "
                f"{label:<{name_width}} {_duration(span.duration_ms):>10} "
                f"|{_bar(span, start_ns, total_ns, bar_width)}|")
        if span.error:
            line += f" ERROR {span.status_message}".rstrip()
        lines.append(line)
    return "\n".join(lines)


class TraceAssembler:
    """Collects spans by trace id; ``finished()`` hands out traces quiet for ``quiet`` seconds.

    Thread-safe: the receiver adds from its request threads, the printer polls.
    """

    def __init__(self, quiet: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet = quiet
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, list[SpanRecord]] = {}
        self._last_seen: dict[str, float] = {}
        self._done: dict[str, None] = {}  # trace ids handed out before, oldest first (bounded)

    def add(self, spans: Iterable[SpanRecord]) -> None:
        now = self._clock()
        with self._lock:
            for span in spans:
                self._pending.setdefault(span.trace_id, []).append(span)
                self._last_seen[span.trace_id] = now

    def finished(self, everything: bool = False) -> list[tuple[list[SpanRecord], bool]]:
        """Traces that are finished (all pending ones when ``everything``), oldest first,
        each with a flag saying whether part of it was handed out before."""
        now = self._clock()
        out = []
        with self._lock:
            for trace_id in sorted(self._pending, key=self._last_seen.__getitem__):
                if everything or now - self._last_seen[trace_id] >= self.quiet:
                    out.append((self._pending.pop(trace_id), trace_id in self._done))
                    del self._last_seen[trace_id]
                    self._done[trace_id] = None
            while len(self._done) > MAX_REMEMBERED:
                del self._done[next(iter(self._done))]
        return out
