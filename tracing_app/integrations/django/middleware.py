"""HTTP server spans for Django: ``tracing_app.TracingMiddleware``.

Listed by the user in ``MIDDLEWARE`` (first, so that it times the whole
request) and verified by the system check ``tracing_app.W001``. We do not use
``opentelemetry-instrumentation-django`` here: its instrumentor writes into
``settings.MIDDLEWARE`` at run time and layers the WSGI instrumentation's
attribute collection on top, which we measured as the largest part of the
per-request cost (see BENCHMARKS.md). This one keeps the same span shape
(SERVER kind, ``{method} {route}`` name, stable HTTP semantic-convention
attributes) with less work per request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver
from opentelemetry import baggage, context, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracing_app.conf import TracingConfig
from tracing_app.context import business, privacy
from tracing_app.context.business import EMPTY_CONTEXT, UNTRACED_SPAN
from tracing_app.context.propagators import with_baggage
from tracing_app.integrations.base import Integration
from tracing_app.pipeline import sampling
from tracing_app.pipeline.provider import get_tracer
from tracing_app.safety import guarded
from tracing_app.semconv import (
    CLIENT_ADDRESS,
    ERROR_TYPE,
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
    NETWORK_PROTOCOL_VERSION,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_PATH,
    URL_QUERY,
    URL_SCHEME,
    USER_AGENT_ORIGINAL,
)

UNTRACED_CONTEXT = trace.set_span_in_context(UNTRACED_SPAN, EMPTY_CONTEXT)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "_OTHER"
TRACERESPONSE_HEADER = "traceresponse"
REQUEST_SPAN_ATTRIBUTE = "_tracing_app_span"
REQUEST_ERROR_ATTRIBUTE = "_tracing_app_error_recorded"
REQUEST_BAGGAGE_TOKEN_ATTRIBUTE = "_tracing_app_baggage_token"



_META_KEYS: dict[str, str] = {}


class MetaGetter(Getter[dict]):
    """Reads propagation headers from a WSGI/ASGI ``request.META`` dict."""

    def get(self, carrier: dict, key: str) -> list[str] | None:
        meta_key = _META_KEYS.get(key)
        if meta_key is None:
            meta_key = "HTTP_" + key.upper().replace("-", "_")
            if len(_META_KEYS) < 64:  # the propagators ask for a handful of names
                _META_KEYS[key] = meta_key
        value = carrier.get(meta_key)
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: dict) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


META_GETTER = MetaGetter()


class DjangoIntegration(Integration):
    name = "django"

    def __init__(self) -> None:
        super().__init__()
        self.excluded: re.Pattern[str] | None = None
        self.config: TracingConfig | None = None
        # Everything the request path needs, computed once here (see _install).
        self.policy_routes: tuple[tuple[str, str], ...] = ()
        self.default_policy = "context"
        self.own_keys: frozenset[str] = frozenset()
        self.resolve_route = self.resolve_route_name = False
        self.query_params: frozenset[str] = frozenset()
        self.request_headers: tuple[tuple[str, str], ...] = ()
        self.response_headers: tuple[tuple[str, str], ...] = ()
        self.span_baggage: business.BaggageSpanProcessor | None = None

    def _install(self, config: TracingConfig) -> None:
        # Health checks and static files are never traced (nor sampled: see sampling.py).
        patterns = [f"(?:{p})" for p in config.excluded_urls]
        never = sampling.never_sampled(config)
        if never is not None:
            patterns.append(never.pattern)
        self.excluded = re.compile("|".join(patterns)) if patterns else None
        self.config = config
        self.policy_routes = config.incoming_policy_routes
        self.default_policy = config.incoming_policy
        self.own_keys = frozenset(config.baggage_keys)
        self.resolve_route, self.resolve_route_name = sampling.needs_route(config)
        self.query_params = frozenset(config.record_query_params)
        self.request_headers = privacy.request_header_keys(config.record_request_headers)
        self.response_headers = privacy.response_header_keys(config.record_response_headers)
        self.span_baggage = business.BaggageSpanProcessor.from_config(config)

    def _uninstall(self) -> None:
        self.excluded = None
        self.config = None


integration = DjangoIntegration()


def _server_attributes(request: HttpRequest, method: str) -> dict[str, Any]:
    """The request span's attributes besides those the sampler reads (set at start)."""
    meta = request.META
    attributes: dict[str, Any] = {URL_SCHEME: request.scheme or "http"}
    query = meta.get("QUERY_STRING")
    if query and integration.query_params:
        kept = privacy.allowed_query(query, integration.query_params)
        if kept:
            attributes[URL_QUERY] = kept
    for meta_key, attribute in integration.request_headers:
        value = meta.get(meta_key)
        if isinstance(value, str):
            attributes[attribute] = (value[:privacy.MAX_HEADER_VALUE],)
    if method == OTHER_METHOD:
        attributes[HTTP_REQUEST_METHOD_ORIGINAL] = request.method or ""
    host = meta.get("HTTP_HOST") or meta.get("SERVER_NAME")
    if host:
        name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        attributes[SERVER_ADDRESS] = name or host
        if port.isdigit():
            attributes[SERVER_PORT] = int(port)
    if meta.get("REMOTE_ADDR"):
        attributes[CLIENT_ADDRESS] = meta["REMOTE_ADDR"]
    if meta.get("HTTP_USER_AGENT"):
        attributes[USER_AGENT_ORIGINAL] = meta["HTTP_USER_AGENT"]
    protocol = meta.get("SERVER_PROTOCOL", "")
    if protocol.startswith("HTTP/"):
        attributes[NETWORK_PROTOCOL_VERSION] = protocol[5:]
    return attributes


def traceresponse_value(span_context: trace.SpanContext) -> str:
    """The W3C Trace Context Level 2 ``traceresponse`` header for a span."""
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"


class TracingMiddleware:
    """One SERVER span per request, continuing an incoming ``traceparent``."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not integration.installed:
            # Tracing is off: Django drops this middleware from the chain, so a
            # disabled install costs nothing per request.
            raise MiddlewareNotUsed("tracing_app: tracing is disabled")
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not integration.installed:  # stop() after Django built the chain: pass through
            return self.get_response(request)
        excluded = integration.excluded
        if excluded is not None and excluded.search(request.path):
            return self._untraced(request)
        span = token = None
        with guarded("starting the request span"):
            raw_method = request.method or ""
            method = raw_method if raw_method in KNOWN_METHODS else OTHER_METHOD
            policy = business.policy_for(request.path, integration.policy_routes, integration.default_policy)
            parent, links = business.incoming_context(request.META, META_GETTER, policy, integration.own_keys)
            # Only what the sampler reads (sampling.py) before the decision: an unsampled
            # request (0%, a dropped ratio, an unsampled caller) builds nothing more.
            attributes = {HTTP_REQUEST_METHOD: method, URL_PATH: request.path}
            route_token = self._resolve_for_sampling(request, attributes)
            try:
                started = get_tracer().start_span(
                    method, context=parent, kind=SpanKind.SERVER, attributes=attributes, links=links
                )
            finally:
                if route_token is not None:
                    sampling.current_route_name.reset(route_token)
            if started.is_recording():
                started.set_attributes(_server_attributes(request, method))
            token = context.attach(trace.set_span_in_context(started, parent))
            setattr(request, REQUEST_SPAN_ATTRIBUTE, started)
            span = started
        if span is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            if span.is_recording():
                with guarded("ending the request span"):
                    self._end(span, request, method, None, exc)
            raise
        finally:
            baggage_token = request.__dict__.pop(REQUEST_BAGGAGE_TOKEN_ATTRIBUTE, None)
            if baggage_token is not None:
                context.detach(baggage_token)
            context.detach(token)
        with guarded("ending the request span"):
            if span.is_recording():  # an unsampled request's span records nothing: no attributes to build
                for header, attribute in integration.response_headers:
                    value = response.get(header)
                    if value is not None:
                        span.set_attribute(attribute, (value[:privacy.MAX_HEADER_VALUE],))
                self._end(span, request, method, response, None)
            response[TRACERESPONSE_HEADER] = traceresponse_value(span.get_span_context())
        return response

    def _untraced(self, request: HttpRequest) -> HttpResponse:
        """An excluded path (health check, static file, EXCLUDED_URLS): no span, and spans
        started inside (user code, database, outgoing calls) see a parent that is not
        sampled, so nothing of the request is kept here or downstream."""
        token = context.attach(UNTRACED_CONTEXT)
        try:
            return self.get_response(request)
        finally:
            context.detach(token)

    @staticmethod
    def _resolve_for_sampling(request: HttpRequest, attributes: dict[str, Any]) -> Any:
        """Resolve the route before the span starts, only when a sampling rule needs it."""
        if not (integration.resolve_route or integration.resolve_route_name):
            return None
        try:
            match = get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
        except Resolver404:
            return None
        if match.route:
            attributes[HTTP_ROUTE] = match.route
        if integration.resolve_route_name and match.view_name:
            return sampling.current_route_name.set(match.view_name)
        return None

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> None:
        """Authentication has run by now: put the business context into baggage for the view."""
        span = getattr(request, REQUEST_SPAN_ATTRIBUTE, None)
        config = integration.config
        if span is None or config is None or not config.baggage_resolver:
            return None
        with guarded("resolving the business context"):
            entries = business.resolve(request, config)
            if entries:
                current = context.get_current()
                merged = {**baggage.get_all(current), **entries}
                request.__dict__[REQUEST_BAGGAGE_TOKEN_ATTRIBUTE] = context.attach(with_baggage(merged, current))
                # The span started before the baggage existed: give it the attributes directly.
                if integration.span_baggage is not None:
                    span.set_attributes(integration.span_baggage.attributes(entries))
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        span = getattr(request, REQUEST_SPAN_ATTRIBUTE, None)
        if span is not None:
            with guarded("recording a view exception"):
                privacy.record_error(span, exception)
                setattr(request, REQUEST_ERROR_ATTRIBUTE, True)
        return None

    @staticmethod
    def _end(span: trace.Span, request: HttpRequest, method: str, response: HttpResponse | None,
             exc: BaseException | None) -> None:
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        # One set_attributes call: the SDK takes the span's lock once, not per attribute.
        ending: dict[str, Any] = {}
        if route:
            span.update_name(f"{method} {route}")
            ending[HTTP_ROUTE] = route
        if response is not None:
            ending[HTTP_RESPONSE_STATUS_CODE] = response.status_code
        if ending:
            span.set_attributes(ending)
        if response is not None and response.status_code >= 500:
            # A view exception already set error.type and the status (process_exception).
            if not getattr(request, REQUEST_ERROR_ATTRIBUTE, False):
                span.set_attribute(ERROR_TYPE, str(response.status_code))
                span.set_status(Status(StatusCode.ERROR))
        if exc is not None:
            privacy.record_error(span, exc)
        span.end()
