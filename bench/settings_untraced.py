"""The demo's settings with tracing_app not installed: the benchmarks' untraced baseline,
and the base for the plain-OpenTelemetry baseline (``bench.otel_wsgi``, ``bench.otel_celery``)."""

from project.settings import *  # noqa: F403
from project.settings import MIDDLEWARE

# tracing_app stays in INSTALLED_APPS for its outbox table only: writing order.created
# there is the demo's business work in every mode. Disabled, it installs nothing.
MIDDLEWARE = [name for name in MIDDLEWARE if not name.startswith("tracing_app.")]
TRACING = {"ENABLED": False}
