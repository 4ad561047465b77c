"""``requests`` (``opentelemetry-instrumentation-requests``): switch ``http_client``."""

from __future__ import annotations

from tracing_app.integrations.http_client.instrumentor import (
    InstrumentorIntegration,
    telemetry_hook,
    withhold_unless_allowed,
)


@telemetry_hook
def requests_request_hook(span: object, request: object) -> None:
    """``request_hook`` for ``RequestsInstrumentor().instrument(...)``: a request to a host
    not in ``PROPAGATE_TO`` leaves without ``traceparent``, ``tracestate`` or ``baggage``.
    Public, for projects that install the requests instrumentation themselves."""
    withhold_unless_allowed(span, getattr(request, "url", None))


integration = InstrumentorIntegration(
    "http_client", "opentelemetry.instrumentation.requests:RequestsInstrumentor",
    request_hook=requests_request_hook,
)
