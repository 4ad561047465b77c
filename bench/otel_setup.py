"""Plain OpenTelemetry, set up as its documentation shows a new user: the SDK provider with
``BatchSpanProcessor`` + ``OTLPSpanExporter`` (OTLP/HTTP) and the Django, Celery, psycopg
and gRPC client instrumentors (the order flow calls the pricing service), all with their
defaults. The baseline tracing_app has to beat.

Endpoint and service name come from the standard ``OTEL_*`` variables.
"""

from __future__ import annotations


def install(django: bool = True) -> None:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    if django:
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument()
    PsycopgInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient

    GrpcInstrumentorClient().instrument()
