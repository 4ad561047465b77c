"""The one place where telemetry failures are swallowed.

Code that only enriches telemetry must never fail a request, a task or a query.
It runs inside ``guarded()``: an exception is logged (once per call site per
process, so a broken hook cannot flood the logs) and execution continues.
Tests set ``RAISE_ERRORS = True`` (see ``tracing_app.testing``) so that bugs in
our own code still fail loudly there.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("tracing_app")

RAISE_ERRORS = False
# Under RAISE_ERRORS, failures raised where the host swallows them (Django's response.close()
# runs closers under ``except Exception: pass``): tracing_app.testing raises the first again.
unraised: list[BaseException] = []
_reported: set[str] = set()


class guarded:  # noqa: N801 (used like the function it was: ``with guarded("...")``)
    """``with guarded("what"):`` swallows and logs an Exception raised in the block.

    A class rather than ``@contextmanager``: it runs several times per request and
    per query, and entering a generator-based context manager costs several times more.
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc_type is None or not issubclass(exc_type, Exception) or RAISE_ERRORS:
            return False
        _report(self.what, exc)
        return True


def swallowed_by_host(what: str, exc: Exception) -> None:
    """``exc``, raised under RAISE_ERRORS where the host swallows it (Django's ``close()``
    runs closers under ``except Exception: pass``): kept for ``tracing_app.testing`` to raise
    when the capture ends. Outside RAISE_ERRORS, reported as ``guarded`` would."""
    if RAISE_ERRORS:
        if len(unraised) < 100:  # RAISE_ERRORS set without tracing_app.testing: kept, but not without end
            unraised.append(exc)
    else:
        _report(what, exc)


def swallow(what: str, exc: Exception) -> None:
    """What ``guarded(what)`` does with ``exc``, for the hottest paths: there a bare
    ``try: ... except Exception as exc: swallow(what, exc)`` costs nothing until it fails,
    while ``with guarded(...)`` costs two calls each time. Re-raises under RAISE_ERRORS."""
    if RAISE_ERRORS:
        raise exc
    _report(what, exc)


def _report(what: str, exc: BaseException | None) -> None:
    if what not in _reported:
        _reported.add(what)
        logger.error("tracing_app: %s failed; telemetry for it is skipped", what,
                     exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None)
