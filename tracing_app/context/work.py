"""The request or task running in this context, for integrations that add to it without
importing each other (``.importlinter``).

The django integration (a request) and the celery integration (a task run) call::

    opened = work.begin(span)        # when it starts: its root span (None when not recording)
    work.describe(route=..., controller=...)   # what serves it, once known (optional)
    work.end(opened)                 # when it ends, before span.end(); safe to call twice

and the database integration calls ``work.current()`` to count each statement's shape
(``Work.count``) and to read the route and controller for sqlcommenter.

Repeated queries: when one request or task runs the same statement shape (the recorded
``db.query.text``: values as ``?``, lists written once) more than
``TRACING["REPEATED_QUERY_THRESHOLD"]`` times, ``end()`` gives its root span the
attribute ``tracing_app.db.repeated_query.count`` (the highest count) and one event
``tracing_app.db.repeated_query`` per such shape (``db.query.text`` and
``tracing_app.db.repeated_query.count``; at most ``MAX_EVENTS``, highest counts first),
and logs one WARNING line. The query spans are unchanged. At most ``MAX_SHAPES``
distinct shapes are counted per request or task (each shape text is at most
``QUERY_TEXT_MAX_LENGTH`` characters): the memory this takes is bounded.
"""

from __future__ import annotations

import contextvars
import logging

from opentelemetry import trace

from tracing_app.conf import get_config
from tracing_app.semconv import DB_QUERY_TEXT, TRACING_APP_DB_REPEATED_QUERY, TRACING_APP_DB_REPEATED_QUERY_COUNT

logger = logging.getLogger(__name__)

REPEATED_QUERY_EVENT = TRACING_APP_DB_REPEATED_QUERY
MAX_SHAPES = 1000
MAX_EVENTS = 10


class Work:
    """One request or task run: its root span and what the integrations learn during it."""

    __slots__ = ("controller", "counts", "exceeded", "route", "span", "threshold")

    def __init__(self, span: trace.Span, threshold: int) -> None:
        self.span = span
        self.threshold = threshold
        self.route = ""
        self.controller = ""
        self.counts: dict[str, int] = {}
        self.exceeded = False  # some shape ran more than threshold times

    def count(self, shape: str) -> None:
        """One more statement of ``shape`` (its recorded ``db.query.text``)."""
        counts = self.counts
        seen = counts.get(shape)
        if seen is not None:
            counts[shape] = seen + 1
            if seen >= self.threshold:
                self.exceeded = True
        elif len(counts) < MAX_SHAPES:
            counts[shape] = 1

    def repeated(self) -> list[tuple[int, str]]:
        """(count, shape) of the shapes run more than the threshold, highest count first."""
        if self.threshold <= 0 or not self.exceeded:  # most requests: nothing to sort
            return []
        return sorted(((n, shape) for shape, n in self.counts.items() if n > self.threshold), reverse=True)


class Opened:
    __slots__ = ("closed", "token", "work")

    def __init__(self, token: contextvars.Token, work: Work) -> None:
        self.token, self.work, self.closed = token, work, False


_current: contextvars.ContextVar[Work | None] = contextvars.ContextVar("tracing_app_work", default=None)


def current() -> Work | None:
    """The request or task running in this context, or None."""
    return _current.get()


def begin(span: trace.Span) -> Opened | None:
    """A request or task whose root span is ``span`` starts in this context."""
    if not span.is_recording():  # an unsampled request records nothing: count nothing either
        return None
    work = Work(span, get_config().repeated_query_threshold)
    return Opened(_current.set(work), work)


def describe(route: str = "", controller: str = "") -> None:
    """What serves the current request (``http.route``, the view), once known."""
    work = _current.get()
    if work is not None:
        work.route, work.controller = route or work.route, controller or work.controller


def end(opened: Opened | None) -> None:
    """The request or task ends: flag repeated statements on its span (see the module docstring)."""
    if opened is None or opened.closed:
        return
    opened.closed = True
    try:
        _current.reset(opened.token)
    except ValueError:  # ended in another context than it began (never by our integrations): keep going
        _current.set(None)
    work = opened.work
    repeated = work.repeated()
    if not repeated:
        return
    span = work.span
    span.set_attribute(TRACING_APP_DB_REPEATED_QUERY_COUNT, repeated[0][0])
    for count, shape in repeated[:MAX_EVENTS]:
        span.add_event(REPEATED_QUERY_EVENT, {DB_QUERY_TEXT: shape, TRACING_APP_DB_REPEATED_QUERY_COUNT: count})
    others = f" (and {len(repeated) - 1} more repeated statements)" if len(repeated) > 1 else ""
    logger.warning("tracing_app: %s ran one statement %d times, more than REPEATED_QUERY_THRESHOLD=%d%s: %s",
                   _described(span, work), repeated[0][0], work.threshold, others, repeated[0][1])


def _described(span: trace.Span, work: Work) -> str:
    """The span's name, with the route when the request span is not named after it yet ("GET loop/<int:n>/")."""
    name = getattr(span, "name", "") or "a request or task"
    return f"{name} {work.route}" if work.route and work.route not in name else name
