"""``urllib3`` (``opentelemetry-instrumentation-urllib3``): switch ``urllib3``.

Requests sent by ``requests`` go through urllib3 too; the requests instrumentation
suppresses this one under it, so they still make one span. Its spans lack
``server.address``/``server.port``, ``network.protocol.version`` and, when the request
fails before an answer, ``error.type``: our hooks and ``error_type_wrapper`` add them."""

from __future__ import annotations

from typing import Any

from tracing_app.integrations.http_client.instrumentor import (
    InstrumentorIntegration,
    set_protocol_version,
    set_server,
    telemetry_hook,
    withhold_unless_allowed,
)


@telemetry_hook
def _request_hook(span: Any, pool: Any, request: Any) -> None:
    # request: the instrumentation's RequestInfo; its url is the full URL.
    withhold_unless_allowed(span, request.url)
    set_server(span, request.url)


@telemetry_hook
def _response_hook(span: Any, pool: Any, response: Any) -> None:
    set_protocol_version(span, getattr(response, "version", None))


integration = InstrumentorIntegration(
    "urllib3", "opentelemetry.instrumentation.urllib3:URLLib3Instrumentor",
    error_type_on=("urllib3.connectionpool", "HTTPConnectionPool.urlopen"),
    request_hook=_request_hook, response_hook=_response_hook,
)
