"""What request data may become telemetry: allowlists, checked once at install time.

Defaults record nothing a user typed: no query string, no headers, no task
arguments, no SQL literals (``integrations.database.statements.redact``), no exception messages (a
``ValueError`` quoting an argument, a unique violation quoting the duplicate
e-mail): errors keep their type and stack frames (``record_error``). Authorization, Cookie and
Set-Cookie are refused even when listed (``conf._headers`` reports them as
``tracing_app.E003``, and they are filtered here again).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Status, StatusCode

from tracing_app.conf import get_config
from tracing_app.conf.keys import NEVER_ALLOWED_HEADERS
from tracing_app.safety import guarded
from tracing_app.semconv import ERROR_TYPE, EXCEPTION_STACKTRACE, EXCEPTION_TYPE

MAX_HEADER_VALUE = 256
MAX_ARGS_REPR = 1000


REDACTED = "REDACTED"  # the HTTP semantic conventions' marker for a value left out


def redacted_query(query: str, allowed: frozenset[str]) -> str:
    """``query`` with the value of every key not in ``allowed`` replaced by ``REDACTED``,
    as the HTTP semantic conventions ask of ``url.query`` (the keys stay, so the span
    still shows which parameters came). At most 64 pairs, each cut to 256 characters."""
    kept = []
    for pair in query.split("&", 64)[:64]:
        key, has_value, _ = pair.partition("=")
        if key in allowed or not has_value:
            kept.append(pair[:MAX_HEADER_VALUE])
        else:
            kept.append(f"{key[:MAX_HEADER_VALUE]}={REDACTED}")
    return "&".join(kept)


def request_header_keys(names: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(``request.META`` key, span attribute) per allowed request header."""
    pairs = []
    for name in names:
        name = name.lower()
        if name in NEVER_ALLOWED_HEADERS:
            continue
        meta = name.upper().replace("-", "_")
        if meta not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            meta = "HTTP_" + meta
        pairs.append((meta, f"http.request.header.{name}"))
    return tuple(pairs)


def response_header_keys(names: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(response header, span attribute) per allowed response header."""
    return tuple((name.lower(), f"http.response.header.{name.lower()}")
                 for name in names if name.lower() not in NEVER_ALLOWED_HEADERS)


def task_args_recorder(patterns: Iterable[str]) -> re.Pattern[str] | None:
    patterns = list(patterns)
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def bounded_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_ARGS_REPR else text[:MAX_ARGS_REPR - 1] + "…"


def record_error(span: trace.Span, exc: BaseException, error_type: str = "", status: str | None = None) -> None:
    """Mark ``span`` as failed by ``exc``: an ``exception`` event, ``error.type`` and the status.

    The message (``str(exc)``) is recorded only with ``RECORD_EXCEPTION_MESSAGES``;
    otherwise the event has the type and the stack frames (file, line, code, never
    values) and the status description is the type name. ``status`` replaces the
    status description."""
    name = type(exc).__name__
    span.set_attribute(ERROR_TYPE, error_type or type(exc).__qualname__)
    if get_config().record_exception_messages:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, status if status is not None else f"{name}: {exc}"))
        return
    frames = "".join(traceback.format_tb(exc.__traceback__)) if exc.__traceback__ else ""
    qualified = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    span.add_event("exception", {
        EXCEPTION_TYPE: qualified,
        EXCEPTION_STACKTRACE: f"Traceback (most recent call last):\n{frames}{qualified}",
    })
    span.set_status(Status(StatusCode.ERROR, status if status is not None else name))


class ending:  # noqa: N801 (used like a function: ``with ending(span, token, "..."):``)
    """``with ending(span, token, "what"):`` ends ``span`` when the block ends, however it ends.

    An exception leaving the block (any ``BaseException``: KeyboardInterrupt, a cancelled
    caller) is recorded on the span by ``record_error`` inside ``guarded(what)`` and goes on
    unchanged; then ``token`` (from ``context.attach``, or None when nothing was attached) is
    detached and the span ended. A class, like ``guarded``: it runs once per message."""

    __slots__ = ("span", "token", "what")

    def __init__(self, span: trace.Span, token: object, what: str) -> None:
        self.span = span
        self.token = token
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        try:
            if exc is not None:
                with guarded(self.what):
                    record_error(self.span, exc)
        finally:
            if self.token is not None:
                context.detach(self.token)  # type: ignore[arg-type]
            self.span.end()
        return False
