"""tracing_app: one OpenTelemetry trace across Django, Celery, RabbitMQ and the database.

Usage, in settings.py::

    INSTALLED_APPS = [..., "tracing_app"]
    MIDDLEWARE = ["tracing_app.middleware.TracingMiddleware", ...]
    TRACING = {
        "SERVICE_NAME": "shop-web",
        "OTLP_ENDPOINT": "http://jaeger:4318",   # OTLP/HTTP; 4317 for grpc
        "EXCLUDED_URLS": [r"^/healthz"],
    }

``AppConfig.ready()`` builds the tracer provider and installs the enabled
integrations: HTTP server spans (the middleware), Celery publish/run spans
joined through the message headers, and a CLIENT span per database query.
Every key, its default and its ``OTEL_*`` override are listed in
``tracing_app.conf.KEYS``; ``manage.py check`` reports bad values.

Business context: ``business_context()`` gives a task or view the current
``{"enduser.id": ..., "tenant.id": ...}`` baggage (``tracing_app.business``).
Outgoing calls ask ``should_propagate(host)`` before sending trace context
(``tracing_app.propagation``). Log records carry ``trace_id``/``span_id``: use
``tracing_app.logs.TextFormatter`` or ``JsonFormatter`` in ``LOGGING``.

Messages outside Celery: ``tracing_app.messaging.publish()`` and ``consuming()``
trace raw kombu messages through ``KombuHeadersCarrier`` (AMQP headers). The
transactional outbox: ``tracing_app.outbox.write_event()`` inside
``transaction.atomic()``, published by ``manage.py relay_outbox``.

Synchronous hops: gRPC calls are traced by ``TracingClientInterceptor`` and
``TracingServerInterceptor`` from ``tracing_app.grpc_interceptors`` (public; a
module of its own because grpcio is optional), added where the channel and the
server are built. Outgoing ``requests`` calls are traced by the ``http_client``
integration with no code. Both are ``TRACING["INTEGRATIONS"]`` switches.

Your own spans: ``tracing_app.get_tracer()`` gives the tracer our integrations use
(tracing_app's provider; a no-op when tracing is off). Its spans are the SDK's,
made cheaper (``tracing_app.fast_spans``); ``trace.get_tracer()`` works too.

The names below are the public API; everything else may change.
"""

from .business import business_context
from .conf import TracingConfig, get_config
from .lifecycle import start, stop
from .messaging import KombuHeadersCarrier
from .propagation import should_propagate
from .provider import export_stats, force_flush, get_tracer, shutdown

__version__ = "0.1.0"

__all__ = [
    "KombuHeadersCarrier", "TracingConfig", "__version__", "business_context", "export_stats", "force_flush",
    "get_config", "get_tracer", "should_propagate", "shutdown", "start", "stop",
]
