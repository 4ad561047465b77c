"""A request span's end at its response's ``close()``, and for a response nobody closes.

WSGI servers (PEP 3333) and Django's ASGI handler close a response after sending its
last byte; Django runs the callables in ``response._resource_closers`` then (its own
list: Django has no public hook for it). ``EndAtClose`` is such a callable. Should the
response never be closed (a test calling the middleware itself, an outer middleware
answering with another response, an ASGI request cancelled after the answer), its
``weakref.finalize`` queues the span's end when the response is collected, with the
time of that moment. The queue is drained by ``end_dropped()`` where no lock of ours
is held: a weakref callback may run inside the cyclic garbage collector, in any thread,
while that thread holds a lock (the export queue's, say), so it must not end a span
itself. The middleware drains it at the start of the next request, ``tracing_app.testing``
when a test reads its spans.
"""

from __future__ import annotations

import queue
import weakref
from collections.abc import Callable
from time import time_ns
from typing import Any

from tracing_app import safety

# (end, args, the time the response was collected), queued by finalizers.
_dropped: queue.SimpleQueue[tuple[Callable[..., None], tuple, int]] = queue.SimpleQueue()


def _on_dropped(end: Callable[..., None], args: tuple) -> None:
    # In a weakref callback: SimpleQueue.put is safe there (reentrant, no lock of ours).
    _dropped.put((end, args, time_ns()))


class EndAtClose:
    """``end(*args)`` once, when the response is closed; queued for ``end_dropped()`` if it
    is collected unclosed instead. A pickled copy (Django's cache middleware above ours
    stores the response) ends nothing."""

    __slots__ = ("_finalizer",)

    def __init__(self, response: Any, end: Callable[..., None], args: tuple) -> None:
        self._finalizer: weakref.finalize | None = weakref.finalize(response, _on_dropped, end, args)
        # At exit a finalizer would only queue the end, maybe after end_dropped's own exit hook ran.
        self._finalizer.atexit = False

    def __call__(self) -> None:
        finalizer, self._finalizer = self._finalizer, None
        found = finalizer.detach() if finalizer is not None else None  # None: ended or queued already
        if found is None:
            return
        end, args = found[2]
        try:
            end(*args)
        except Exception as exc:  # only under RAISE_ERRORS: Django's close() would swallow it
            safety.swallowed_by_host("ending the request span at close", exc)

    # Stored in caches (pickles name closing._ended): keep that name importable.
    def __reduce__(self) -> tuple[Callable[[], EndAtClose], tuple]:
        return _ended, ()


def _ended() -> EndAtClose:
    copy = EndAtClose.__new__(EndAtClose)
    copy._finalizer = None
    return copy


# nothing_dropped() -> True unless responses collected unclosed left spans to end: one C call,
# made at the start of every request.
nothing_dropped = _dropped.empty


def end_dropped() -> None:
    """End the spans of responses collected unclosed, each at the time it was collected."""
    while True:
        try:
            end, args, end_time = _dropped.get_nowait()
        except queue.Empty:
            return
        try:
            end(*args, end_time=end_time)
        except Exception as exc:  # under RAISE_ERRORS: not the failure of the request that drains
            safety.swallowed_by_host("ending a dropped response's span", exc)
