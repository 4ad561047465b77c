"""Installs waiting for a module's first import: an integration whose library the
process has not imported at start-up is *pending*, and is installed right after the
process first imports that library. A process that never uses an HTTP client library
never loads it, nor its OpenTelemetry instrumentation (tens of MB of RSS, see
BENCHMARKS.md's soak section).

This is wrapt's post-import hook (``wrapt.importer.register_post_import_hook``): its
finder, first in ``sys.meta_path``, wraps the loader of a watched module only, and
calls the hook once the module has run, before ``import`` returns to the caller. It
is what OpenTelemetry's instrumentations already use wrapt for, and it handles the
import system's corners (the module's ``__loader__``, resource readers) that a
hand-written finder would have to repeat. wrapt has no way to take a hook back, so
one hook per module is registered and it looks up what is pending *now*: ``cancel``
empties that, and a later import installs nothing.

A hook that raises would fail the application's ``import``; the ``install`` callables
given here must not raise (``tracing_app.integrations`` logs and skips a failed install).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType

_lock = threading.Lock()
_pending: dict[str, tuple[str, Callable[[], None]]] = {}  # integration name -> (module, install)
_watched: set[str] = set()  # modules with a wrapt hook that has not fired yet


def defer(name: str, module: str, install: Callable[[], None]) -> None:
    """Call ``install()`` once ``module`` (a dotted module name) is imported; at once
    when it already is. Deferring ``name`` again replaces its pending install."""
    with _lock:
        _pending[name] = (module, install)
        if module in _watched:
            return
        _watched.add(module)
    import wrapt  # here: a process that defers nothing (tracing disabled) does not load it

    wrapt.register_post_import_hook(_imported, module)


def cancel(name: str) -> bool:
    """Drop ``name``'s pending install, if any: a later import of its module installs
    nothing. True when one was pending."""
    with _lock:
        return _pending.pop(name, None) is not None


def pending() -> dict[str, str]:
    """Integration name -> the module whose first import installs it."""
    with _lock:
        return {name: module for name, (module, _) in _pending.items()}


def _imported(module: ModuleType) -> None:
    imported = module.__name__
    with _lock:
        _watched.discard(imported)  # wrapt fires a hook once: a later defer registers again
        due = [(name, install) for name, (watched, install) in _pending.items() if watched == imported]
        for name, _ in due:
            del _pending[name]
    for _, install in due:
        install()
