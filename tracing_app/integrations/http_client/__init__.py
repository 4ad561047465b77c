"""Outgoing HTTP: a CLIENT span per request, with the trace context in its headers,
for ``requests``, ``httpx`` (sync and async), ``urllib3``, ``urllib.request`` and
``aiohttp``'s client; one integration per library (``TRACING["INTEGRATIONS"]``:
``http_client`` is ``requests``, the name it had before the others came).

Each module here installs the OpenTelemetry instrumentation for its library
(``instrumentor.InstrumentorIntegration``) with three things of ours:

- the tracer provider is ``DelegatingTracerProvider``, so its spans follow
  tracing_app's provider, including the in-memory one ``capture_spans()`` swaps in;
- a request hook that withholds context and baggage from hosts
  ``TRACING["PROPAGATE_TO"]`` does not allow (the stock instrumentations send them to
  any host); a call elsewhere is still traced;
- the stable HTTP semantic conventions (``http.request.method``, ``url.full``,
  ``server.address``, ``server.port``, ``http.response.status_code``, ``error.type``),
  the names our SERVER spans carry, instead of the instrumentations' default old names.

Libraries call each other (``requests`` sends through ``urllib3``): the outer
instrumentation suppresses the inner one, so one request is one span.
"""
