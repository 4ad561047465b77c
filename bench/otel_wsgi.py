"""WSGI entry point of the plain-OpenTelemetry baseline: ``gunicorn bench.otel_wsgi``.

Instrumented before Django loads its middleware, as the instrumentation's docs ask.
gunicorn loads this module in the worker (no ``--preload``), so the batch
processor's thread starts after the fork.
"""

import os

from bench import otel_setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_untraced")
otel_setup.install()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
