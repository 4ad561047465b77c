"""Outgoing HTTP: a CLIENT span per ``requests`` call, with ``traceparent`` in its headers.

Built on ``opentelemetry-instrumentation-requests``: it fits the install/uninstall
pattern (``instrument()``/``uninstrument()`` patch and restore ``Session.send``) and
takes a ``tracer_provider``. We hand it ``DelegatingTracerProvider`` so its spans
follow tracing_app's provider, including the one ``capture_spans()`` swaps in, and
``requests_request_hook`` so that context and baggage go only to hosts
``TRACING["PROPAGATE_TO"]`` allows (a call elsewhere is still traced). The
exporter's own HTTP calls are not traced: the SDK's span processors suppress
instrumentation while they export.
"""

from __future__ import annotations

import logging

from tracing_app.conf import TracingConfig
from tracing_app.context.egress import should_propagate
from tracing_app.context.propagators import block
from tracing_app.integrations.base import Integration
from tracing_app.pipeline.provider_proxy import DelegatingTracerProvider

logger = logging.getLogger(__name__)


def requests_request_hook(span: object, request: object) -> None:
    """``request_hook`` for ``RequestsInstrumentor().instrument(...)``: a request to a host
    not in ``PROPAGATE_TO`` leaves without ``traceparent``, ``tracestate`` or ``baggage``.
    (The instrumentor calls the hook, then injects into ``request.headers``.)"""
    headers = getattr(request, "headers", None)
    if headers is not None and not should_propagate(str(getattr(request, "url", "") or "")):
        block(headers)


class HttpClientIntegration(Integration):
    name = "http_client"

    def __init__(self) -> None:
        super().__init__()
        self._owned = False

    def _install(self, config: TracingConfig) -> None:
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        instrumentor = RequestsInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            # Someone else (opentelemetry-instrument, the user) instrumented requests
            # first: leave theirs in place and never undo it.
            logger.debug("tracing_app: requests is already instrumented; keeping that instrumentation")
            return
        instrumentor.instrument(tracer_provider=DelegatingTracerProvider(), request_hook=requests_request_hook)
        self._owned = True

    def _uninstall(self) -> None:
        if self._owned:
            from opentelemetry.instrumentation.requests import RequestsInstrumentor

            RequestsInstrumentor().uninstrument()
            self._owned = False


integration = HttpClientIntegration()
