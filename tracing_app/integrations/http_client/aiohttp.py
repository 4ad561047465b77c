"""``aiohttp``'s client (``opentelemetry-instrumentation-aiohttp-client``): switch ``aiohttp``.

The instrumentation adds its trace config to every ``ClientSession`` created after
install; a session created before keeps running untraced. Its spans lack
``network.protocol.version``: our response hook adds it."""

from __future__ import annotations

from typing import Any

from tracing_app.integrations.http_client.instrumentor import (
    InstrumentorIntegration,
    drop_context_unless_allowed,
    set_protocol_version,
    telemetry_hook,
    withhold_unless_allowed,
)


@telemetry_hook
def _request_hook(span: Any, params: Any) -> None:
    withhold_unless_allowed(span, params.url)  # params: aiohttp.TraceRequestStartParams


@telemetry_hook
def _response_hook(span: Any, params: Any) -> None:
    # params: TraceRequestEndParams, or TraceRequestExceptionParams (no response) on failure.
    response = getattr(params, "response", None)
    if response is not None:
        set_protocol_version(span, tuple(response.version))


def _guard_hop(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    # ClientRequest.update_headers builds each hop's headers (a redirect's from the
    # previous hop's); the request's URL is already set.
    result = wrapped(*args, **kwargs)
    drop_context_unless_allowed(instance.url, instance.headers)
    return result


integration = InstrumentorIntegration(
    "aiohttp", "opentelemetry.instrumentation.aiohttp_client:AioHttpClientInstrumentor",
    request_hook=_request_hook, response_hook=_response_hook,
    redirect_guard=("aiohttp.client_reqrep", "ClientRequest.update_headers", _guard_hop),
)
