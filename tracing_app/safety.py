"""The one place where telemetry failures are swallowed.

Code that only enriches telemetry must never fail a request, a task or a query.
It runs inside ``guarded()``: an exception is logged (once per call site per
process, so a broken hook cannot flood the logs) and execution continues.
Tests set ``RAISE_ERRORS = True`` (see ``tracing_app.testing``) so that bugs in
our own code still fail loudly there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

logger = logging.getLogger("tracing_app")

RAISE_ERRORS = False
_reported: set[str] = set()


@contextlib.contextmanager
def guarded(what: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        if RAISE_ERRORS:
            raise
        if what not in _reported:
            _reported.add(what)
            logger.exception("tracing_app: %s failed; telemetry for it is skipped", what)
