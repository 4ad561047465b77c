"""Views without a database, for the trust-boundary, sampling and fuzz tests."""

import logging

from django.http import JsonResponse
from django.urls import path
from opentelemetry import baggage, trace

from tracing_app import business_context, get_tracer

logger = logging.getLogger("tests.business")


def whoami(request, **kwargs):
    span_context = trace.get_current_span().get_span_context()
    with get_tracer().start_as_current_span("work"):
        logger.info("whoami")
    return JsonResponse({
        "context": business_context(),
        "baggage": {k: str(v) for k, v in baggage.get_all().items()},
        "trace_id": f"{span_context.trace_id:032x}",
    })


def boom(request):
    raise RuntimeError(f"boom {request.GET.get('email', '')}")


urlpatterns = [
    path("api/whoami/", whoami, name="whoami"),
    path("internal/whoami/", whoami, name="internal-whoami"),
    path("reports/<int:pk>/", whoami, name="report"),
    path("healthz", whoami, name="healthz"),
    path("boom/", boom, name="boom"),
]
