"""``urllib.request`` (``opentelemetry-instrumentation-urllib``, which patches
``OpenerDirector.open``): switch ``urllib``.

Its spans lack ``server.address``/``server.port`` and ``network.protocol.version``, and
for a 4xx/5xx answer (which urllib raises as ``HTTPError``) its ``error.type`` is
``HTTPError`` where the conventions want the status code: our hooks fix those."""

from __future__ import annotations

from typing import Any

from tracing_app.integrations.http_client.instrumentor import (
    InstrumentorIntegration,
    drop_context_unless_allowed,
    set_error_status_code,
    set_protocol_version,
    set_server,
    telemetry_hook,
    withhold_unless_allowed,
)


@telemetry_hook
def _request_hook(span: Any, request: Any) -> None:
    withhold_unless_allowed(span, request.full_url)  # request: urllib.request.Request
    set_server(span, request.full_url)


@telemetry_hook
def _response_hook(span: Any, request: Any, response: Any) -> None:
    # response: the http.client response, or for HTTPError the error (it is one too); None without an answer.
    if response is not None:
        set_protocol_version(span, getattr(response, "version", None))
        set_error_status_code(span, getattr(response, "code", None))


def _guard_redirect(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    # HTTPRedirectHandler.redirect_request returns the next hop's Request (None: no redirect).
    following = wrapped(*args, **kwargs)
    if following is not None:
        drop_context_unless_allowed(following.full_url, following)
    return following


integration = InstrumentorIntegration(
    "urllib", "opentelemetry.instrumentation.urllib:URLLibInstrumentor",
    request_hook=_request_hook, response_hook=_response_hook,
    redirect_guard=("urllib.request", "HTTPRedirectHandler.redirect_request", _guard_redirect),
)
