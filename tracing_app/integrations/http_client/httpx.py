"""``httpx``, ``Client`` and ``AsyncClient`` (``opentelemetry-instrumentation-httpx``,
which patches both transports): switch ``httpx``."""

from __future__ import annotations

from typing import Any

from tracing_app.integrations.http_client.instrumentor import (
    InstrumentorIntegration,
    telemetry_hook,
    withhold_unless_allowed,
)


@telemetry_hook
def _request_hook(span: Any, request: Any) -> None:
    # request: the instrumentation's RequestInfo, one per hop; its headers are the request's
    # own, copied from the previous hop's on a redirect, and copied again to inject.
    withhold_unless_allowed(span, request.url, request.headers)


async def _async_request_hook(span: Any, request: Any) -> None:
    # The instrumentation takes an AsyncClient hook only if it is a coroutine function.
    _request_hook(span, request)


integration = InstrumentorIntegration(
    "httpx", "opentelemetry.instrumentation.httpx:HTTPXClientInstrumentor",
    request_hook=_request_hook, async_request_hook=_async_request_hook,
)
