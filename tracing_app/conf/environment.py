"""``OTEL_PROPAGATORS`` before the OpenTelemetry API reads it.

The API reads ``OTEL_PROPAGATORS`` once, when ``opentelemetry.propagate`` is first
imported, and raises ``ValueError`` for a name no installed package provides (entry
point names are also case-sensitive there, so ``TraceContext`` fails too). Raised at
import, it stops Django from starting: ``manage.py`` cannot even report it. The
specification says an unrecognised value is a warning and is ignored, so
``import_propagate()`` shows the API the variable as we read it (lower-cased; when a
name is unknown, the default) and restores the real value right after; the system
checks then report the unknown name (``tracing_app.W004``).
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

VARIABLE = "OTEL_PROPAGATORS"
DEFAULT = "tracecontext,baggage"


def known_propagators() -> set[str]:
    """Names a propagator can be loaded by: ``none``, ours, and installed entry points."""
    installed = (entry.name for entry in entry_points(group="opentelemetry_propagator"))
    return {"none", "tracecontext", "baggage", *installed}


def usable_value(raw: str) -> str:
    """What the API may read for ``raw``: the names lower-cased, or the default if one is unknown."""
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    if not names or not set(names) <= known_propagators():
        return DEFAULT
    return ",".join(names)


def import_propagate() -> None:
    """Import ``opentelemetry.propagate`` so that a bad ``OTEL_PROPAGATORS`` cannot make it raise."""
    if "opentelemetry.propagate" in sys.modules:
        return
    raw = os.environ.get(VARIABLE)
    if raw is None or not raw.strip() or usable_value(raw) == raw:
        importlib.import_module("opentelemetry.propagate")
        return
    # Changed for the import only, while Django is starting (one thread).
    os.environ[VARIABLE] = usable_value(raw)
    try:
        importlib.import_module("opentelemetry.propagate")
    finally:
        os.environ[VARIABLE] = raw
