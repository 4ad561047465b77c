"""The demo's settings with tracing_app not installed: the benchmarks' untraced baseline,
and the base for the plain-OpenTelemetry baseline (``bench.otel_wsgi``, ``bench.otel_celery``)."""

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "tracing_app"]
MIDDLEWARE = [name for name in MIDDLEWARE if not name.startswith("tracing_app.")]
TRACING = {}
