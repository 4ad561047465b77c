"""``requests`` (``opentelemetry-instrumentation-requests``): switch ``http_client``."""

from __future__ import annotations

from typing import Any

from tracing_app.integrations.http_client.instrumentor import (
    InstrumentorIntegration,
    drop_context_unless_allowed,
    telemetry_hook,
    withhold_unless_allowed,
)


@telemetry_hook
def requests_request_hook(span: object, request: object) -> None:
    """``request_hook`` for ``RequestsInstrumentor().instrument(...)``: a request to a host
    not in ``PROPAGATE_TO`` leaves without ``traceparent``, ``tracestate`` or ``baggage``.
    Public, for projects that install the requests instrumentation themselves."""
    withhold_unless_allowed(span, getattr(request, "url", None))


def _guard_redirect(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    # Session.rebuild_auth(prepared_request, response) runs for every redirect hop, on the
    # next request (its URL set, its headers copied from the previous hop's).
    result = wrapped(*args, **kwargs)
    request = args[0] if args else kwargs["prepared_request"]
    drop_context_unless_allowed(request.url, request.headers)
    return result


integration = InstrumentorIntegration(
    "http_client", "opentelemetry.instrumentation.requests:RequestsInstrumentor",
    request_hook=requests_request_hook,
    redirect_guard=("requests.sessions", "SessionRedirectMixin.rebuild_auth", _guard_redirect),
)
