"""ASGI entry point of the plain-OpenTelemetry baseline: ``gunicorn -k uvicorn_worker.UvicornWorker bench.otel_asgi``.

The same instrumentations as ``bench.otel_wsgi`` (Django, psycopg, Celery, gRPC client,
SDK batch processor, OTLP/HTTP), as a user of plain OpenTelemetry serving Django under
ASGI sets them up: ``DjangoInstrumentor`` traces ASGI requests with the ASGI
instrumentation's attribute collection (``opentelemetry-instrumentation-asgi``).
"""

import os

from bench import otel_setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_untraced")
os.environ.setdefault("WEB_INTERFACE", "asgi")  # as project/asgi.py: no persistent database connections
otel_setup.install()

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
