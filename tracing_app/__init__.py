"""tracing_app: one OpenTelemetry trace across Django, Celery, RabbitMQ and the database.

Usage, in settings.py::

    INSTALLED_APPS = [..., "tracing_app"]
    MIDDLEWARE = ["tracing_app.TracingMiddleware", ...]
    TRACING = {
        "SERVICE_NAME": "shop-web",
        "OTLP_ENDPOINT": "http://jaeger:4318",   # OTLP/HTTP; 4317 for grpc
    }

The public API is the names in ``__all__`` below, imported from ``tracing_app``
itself, plus two modules named for the tool that loads them:
``tracing_app.testing`` (the pytest plugin) and ``tracing_app.integrations.gunicorn``
(the gunicorn server hooks). Everything else may change.

Layers, each a package; a layer imports only the ones below it (``.importlinter``)::

    apps, checks, lifecycle, management   the Django app shell: start/stop, system checks, commands
    outbox                                the transactional outbox and its relay
    integrations/<library>                hooks into Django, Celery, the database, Django's cache, kombu,
                                          gRPC, HTTP clients, logging, gunicorn; never import each other
    pipeline (+ pipeline/export)          provider, our span class, sampling; export queue, OTLP
                                          encoding, OTLP/HTTP sender
    context                               the W3C codec, propagators, carriers, baggage/business
                                          context, incoming trust policy, egress allowlist, privacy,
                                          the request or task in progress (work: repeated queries)
    conf                                  TRACING keys and OTEL_* variables, parsed into TracingConfig
    semconv, safety                       attribute names; the "never break the host" guard
    devtools                              receiver, waterfall, span records (tracing_tail, tests)

Names an optional library backs (gRPC, kombu, Django's request machinery) are
imported on first use, so ``import tracing_app`` costs little and never needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from tracing_app.conf import TracingConfig, environment, get_config

environment.import_propagate()  # first: a bad OTEL_PROPAGATORS must not stop the import (conf/environment.py)

from tracing_app.context.business import business_context  # noqa: E402
from tracing_app.context.egress import should_propagate  # noqa: E402
from tracing_app.lifecycle import start, stop  # noqa: E402
from tracing_app.pipeline.provider import export_stats, force_flush, get_tracer, shutdown  # noqa: E402

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first access (PEP 562).
_LAZY = {
    "TracingMiddleware": "tracing_app.integrations.django.middleware",
    "TextFormatter": "tracing_app.integrations.logs",
    "JsonFormatter": "tracing_app.integrations.logs",
    "KombuHeadersCarrier": "tracing_app.context.carriers",
    "publish": "tracing_app.integrations.kombu",
    "consuming": "tracing_app.integrations.kombu",
    "TracingClientInterceptor": "tracing_app.integrations.grpc",
    "TracingServerInterceptor": "tracing_app.integrations.grpc",
    "aio_client_interceptors": "tracing_app.integrations.grpc.aio",
    "TracingAioServerInterceptor": "tracing_app.integrations.grpc.aio",
    "requests_request_hook": "tracing_app.integrations.http_client.requests",
    "write_event": "tracing_app.outbox",
    "user_context": "tracing_app.context.business",
}

__all__ = [
    "JsonFormatter", "KombuHeadersCarrier", "TextFormatter", "TracingAioServerInterceptor",
    "TracingClientInterceptor", "TracingConfig", "TracingMiddleware", "TracingServerInterceptor", "__version__",
    "aio_client_interceptors", "business_context", "consuming", "export_stats",
    "force_flush", "get_config", "get_tracer", "publish", "requests_request_hook", "should_propagate", "shutdown",
    "start", "stop", "user_context", "write_event",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tracing_app' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
