"""HTTP server spans for Django: ``tracing_app.TracingMiddleware``.

Listed by the user in ``MIDDLEWARE`` (first, so that it times the whole
request) and verified by the system check ``tracing_app.W001``. We do not use
``opentelemetry-instrumentation-django`` here: its instrumentor writes into
``settings.MIDDLEWARE`` at run time and layers the WSGI instrumentation's
attribute collection on top, which we measured as the largest part of the
per-request cost (see BENCHMARKS.md). This one keeps the same span shape
(SERVER kind, ``{method} {route}`` name, stable HTTP semantic-convention
attributes, ``server_span``) with less work per request.

Sync- and async-capable: under WSGI Django calls ``__call__``, under ASGI it awaits
``__acall__`` in the event loop. The span ends when the server has sent the response
and closed it (a stream too: ``streaming``), not when the view returns: its duration
covers the sending, and building its attributes and ending it cost the client no wait.
"""

from __future__ import annotations

import asyncio
import atexit
import re
import sys
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.core.exceptions import MiddlewareNotUsed, SynchronousOnlyOperation
from django.core.signals import got_request_exception
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, get_resolver
from opentelemetry import baggage, context, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind

from tracing_app.conf import TracingConfig
from tracing_app.context import business, privacy, w3c, work
from tracing_app.context.business import EMPTY_CONTEXT, UNTRACED_SPAN
from tracing_app.context.propagators import attach, detach, global_is_w3c_only, with_baggage, with_span
from tracing_app.integrations.base import Integration
from tracing_app.integrations.django import closing, server_span, streaming
from tracing_app.integrations.django.server_span import KNOWN_METHODS, OTHER_METHOD, OTHER_METHOD_NAME
from tracing_app.pipeline import sampling
from tracing_app.pipeline.provider import get_tracer
from tracing_app.safety import guarded, swallow
from tracing_app.semconv import HTTP_REQUEST_METHOD, HTTP_ROUTE, URL_PATH

UNTRACED_CONTEXT = trace.set_span_in_context(UNTRACED_SPAN, EMPTY_CONTEXT)
TRACERESPONSE_HEADER = "traceresponse"
SERVER_TIMING_HEADER = "Server-Timing"
# The commas between Server-Timing metrics: not those inside a quoted description.
_METRICS_SEPARATOR = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')
REQUEST_SPAN_ATTRIBUTE = "_tracing_app_span"
REQUEST_WORK_ATTRIBUTE = "_tracing_app_work"
REQUEST_BAGGAGE_TOKEN_ATTRIBUTE = "_tracing_app_baggage_token"

_META_KEYS: dict[str, str] = {}
_TRACEPARENT_META, _BAGGAGE_META = "HTTP_TRACEPARENT", "HTTP_BAGGAGE"


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
        # Django sends this for exactly the exceptions it turns into a 500 (views, other
        # middleware, error handlers), never for those it turns into a 4xx.
        got_request_exception.connect(_on_unhandled_exception, weak=False, dispatch_uid=_SIGNAL_UID)
        # Spans of responses dropped unclosed that no request came to end: at exit, before the
        # provider's own exit hook (registered earlier, run later) exports them.
        atexit.unregister(closing.end_dropped)
        atexit.register(closing.end_dropped)

    def _uninstall(self) -> None:
        got_request_exception.disconnect(dispatch_uid=_SIGNAL_UID)
        closing.end_dropped()  # no request will come to drain them
        self.excluded = None
        self.config = None


_SIGNAL_UID = "tracing_app.django.unhandled_exception"
integration = DjangoIntegration()


def _on_unhandled_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    span = getattr(request, "__dict__", {}).get(REQUEST_SPAN_ATTRIBUTE)
    exc = sys.exc_info()[1]
    if span is None or exc is None or not integration.installed or not span.is_recording():
        return
    if getattr(request, server_span.REQUEST_ERROR_ATTRIBUTE, False):
        # With DEBUG_PROPAGATE_EXCEPTIONS each middleware layer converts and re-raises the
        # same exception, sending the signal again: the span records the first one.
        return
    with guarded("recording an unhandled exception"):
        server_span.record_unhandled(span, request, exc)


def answer_trace_context(response: HttpResponseBase, span_context: trace.SpanContext) -> None:
    """Name the request's span in ``response``, both ways W3C Trace Context Level 2 has
    defined: the ``traceresponse`` header (the 2024 Candidate Recommendation) and the
    ``trace`` metric of ``Server-Timing`` that replaced it in the editor's draft
    (``trace;desc=00-<trace-id>-<span-id>-<flags>``), after the view's own metrics."""
    value = w3c.format_traceparent(span_context)
    response[TRACERESPONSE_HEADER] = value
    metric = f"trace;desc={value}"
    metrics = response.get(SERVER_TIMING_HEADER)
    if metrics:
        if "trace" in metrics.lower():
            # A response served again (Django's cache middleware) still names an earlier trace: drop it.
            kept = [m.strip() for m in _METRICS_SEPARATOR.split(metrics)]
            metrics = ", ".join(m for m in kept if m.split(";", 1)[0].strip().lower() != "trace")
        metric = f"{metrics}, {metric}" if metrics else metric
    response[SERVER_TIMING_HEADER] = metric


class TracingMiddleware:
    """One SERVER span per request, continuing an incoming ``traceparent``.

    Sync- and async-capable (Django's "Asynchronous support" for middleware): under
    ASGI, when the middleware below it is async too, Django awaits ``__acall__``
    directly and tracing adds no thread hop; under WSGI it is called synchronously.
    The span ends once the response has been sent (``_end_when_sent``, ``streaming``)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        if not integration.installed:
            # Tracing is off: Django drops this middleware from the chain, so a
            # disabled install costs nothing per request.
            raise MiddlewareNotUsed("tracing_app: tracing is disabled")
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
            # Django calls process_view in the handler's mode only when it is a coroutine
            # function; a sync one would cost a thread hop per request.
            self.process_view = self._aprocess_view

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if not integration.installed:  # stop() after Django built the chain: pass through
            return self.get_response(request)
        span, token, method = _begin(request)
        if token is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            _fail(span, request, method, exc, token)
            raise
        return _answer(span, request, method, response, token)

    async def __acall__(self, request: HttpRequest) -> Any:
        if not integration.installed:
            return await self.get_response(request)
        span, token, method = _begin(request)
        if token is None:
            return await self.get_response(request)
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            _fail(span, request, method, exc, token)
            raise
        return _answer(span, request, method, response, token)

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> None:
        """Authentication has run by now: put the business context into baggage for the view."""
        if REQUEST_WORK_ATTRIBUTE in request.__dict__:  # a sampled request's work (see _begin)
            _describe_work(request)
        span = request.__dict__.get(REQUEST_SPAN_ATTRIBUTE)
        config = integration.config
        if span is None or config is None or not config.baggage_resolver:
            return None
        try:  # safety.swallow, not guarded(): this runs for every request
            entries = business.resolve(request, config)
            if entries:
                _attach_business_context(request, span, entries)
        except Exception as exc:
            swallow("resolving the business context", exc)
        return None

    async def _aprocess_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> None:
        if REQUEST_WORK_ATTRIBUTE in request.__dict__:  # a sampled request's work (see _begin)
            _describe_work(request)
        span = request.__dict__.get(REQUEST_SPAN_ATTRIBUTE)
        config = integration.config
        if span is None or config is None or not config.baggage_resolver:
            return None
        with guarded("resolving the business context"):
            try:
                entries = business.resolve(request, config)
            except SynchronousOnlyOperation:
                # The resolver touched the database (a lazy request.user): only then run
                # it in a thread, as Django would have for a sync process_view.
                entries = await sync_to_async(business.resolve)(request, config)
            if entries:
                _attach_business_context(request, span, entries)
        return None


def _describe_work(request: HttpRequest) -> None:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        work.describe(route=match.route or "", controller=match.view_name or "")


def _attach_business_context(request: HttpRequest, span: trace.Span, entries: dict[str, str]) -> None:
    current = context.get_current()
    merged = {**baggage.get_all(current), **entries}
    request.__dict__[REQUEST_BAGGAGE_TOKEN_ATTRIBUTE] = context.attach(with_baggage(merged, current))
    # The span started before the baggage existed: give it the attributes directly.
    if integration.span_baggage is not None:
        span.set_attributes(integration.span_baggage.attributes(entries))


def _begin(request: HttpRequest) -> tuple[trace.Span | None, Any, str]:
    """Start the request's span and make it current: (span, token, method); span None for an
    excluded path (an unsampled context is current), token None when starting failed."""
    if not closing.nothing_dropped():  # responses collected unclosed: their spans end here (closing)
        closing.end_dropped()
    excluded = integration.excluded
    if excluded is not None and excluded.search(request.path):
        # A health check, a static file, EXCLUDED_URLS: no span, and spans started inside
        # (user code, database, outgoing calls) see a parent that is not sampled, so
        # nothing of the request is kept here or downstream.
        return None, attach(UNTRACED_CONTEXT), ""
    try:  # safety.swallow, not guarded(): this runs for every request (see safety.swallow)
        raw_method = request.method or ""
        method = raw_method if raw_method in KNOWN_METHODS else OTHER_METHOD
        meta = request.META
        if meta.get(_TRACEPARENT_META) or meta.get(_BAGGAGE_META) or not global_is_w3c_only():
            policy = business.policy_for(request.path, integration.policy_routes, integration.default_policy)
            parent, links = business.incoming_context(meta, META_GETTER, policy, integration.own_keys)
        else:  # propagators.nothing_to_extract, read from META directly: every request from outside
            parent, links = EMPTY_CONTEXT, None
        # Only what the sampler reads (sampling.py) before the decision: an unsampled
        # request (0%, a dropped ratio, an unsampled caller) builds nothing more.
        attributes = {HTTP_REQUEST_METHOD: method, URL_PATH: request.path}
        route_token = None
        if integration.resolve_route or integration.resolve_route_name:  # only when a sampling rule needs it
            route_token = _resolve_for_sampling(request, attributes)
        try:
            span = get_tracer().start_span(
                OTHER_METHOD_NAME if method == OTHER_METHOD else method, context=parent, kind=SpanKind.SERVER,
                attributes=attributes, links=links,
            )
        finally:
            if route_token is not None:
                sampling.current_route_name.reset(route_token)
        token = attach(with_span(span, parent))
        request.__dict__[REQUEST_SPAN_ATTRIBUTE] = span
        if span.is_recording():  # an unsampled request builds nothing more
            request.__dict__[REQUEST_WORK_ATTRIBUTE] = work.begin(span)  # repeated queries, sqlcommenter's route
        return span, token, method
    except Exception as exc:
        swallow("starting the request span", exc)
    return None, None, ""


def _detach(request: HttpRequest, token: Any) -> None:
    baggage_token = request.__dict__.pop(REQUEST_BAGGAGE_TOKEN_ATTRIBUTE, None)
    if baggage_token is not None:
        detach(baggage_token)
    detach(token)


def _fail(span: trace.Span | None, request: HttpRequest, method: str, exc: BaseException, token: Any) -> None:
    """An exception left the handler (DEBUG_PROPAGATE_EXCEPTIONS, a BaseException, a
    cancelled ASGI request): no response was sent."""
    try:  # whatever fails here, the request's context is left
        with guarded("ending the request's work"):
            work.end(request.__dict__.pop(REQUEST_WORK_ATTRIBUTE, None))
    finally:
        _detach(request, token)
    if span is None or not span.is_recording():
        return
    if isinstance(exc, asyncio.CancelledError):
        outcome: streaming.Outcome = streaming.DISCONNECTED
    elif getattr(request, server_span.REQUEST_ERROR_ATTRIBUTE, False):  # recorded already, from the signal
        outcome = None
    else:
        outcome = exc
    _end_request_span(span, request, method, None, outcome)


def _answer(span: trace.Span | None, request: HttpRequest, method: str, response: Any, token: Any) -> Any:
    """Name the span in ``response`` and have it end once the response has been sent (its
    stream included); then leave the request's context (after: a stream carries it, business
    baggage included)."""
    try:  # whatever fails here, the finally leaves the request's context
        # Answered: an exception an outer middleware raises from now on (got_request_exception)
        # makes another response, which this span does not describe.
        request.__dict__.pop(REQUEST_SPAN_ATTRIBUTE, None)
        opened = request.__dict__.pop(REQUEST_WORK_ATTRIBUTE, None)
        if opened is not None:
            try:
                work.end(opened)
            except Exception as exc:
                swallow("ending the request's work", exc)
        if span is None:  # an excluded path: only a stream still needs the unsampled context
            if response.streaming:
                with guarded("tracing a streaming response"):
                    streaming.trace_stream(response, context.get_current(), None)
            return response
        try:
            recording = span.is_recording()
            if recording:  # an unsampled request's span records nothing: no attributes to build
                for header, attribute in integration.response_headers:
                    value = response.get(header)
                    if value is not None:
                        span.set_attribute(attribute, (value[:privacy.MAX_HEADER_VALUE],))
            answer_trace_context(response, span.get_span_context())
            if response.streaming:
                end = _stream_end(span, request, method, response.status_code) if recording else None
                streaming.trace_stream(response, context.get_current(), end, head=method == "HEAD")
            elif recording:
                _end_when_sent(span, request, method, response)
        except Exception as exc:
            swallow("ending the request span", exc)
        return response
    finally:
        _detach(request, token)


def _end_when_sent(span: trace.Span, request: HttpRequest, method: str, response: HttpResponseBase) -> None:
    """End the span when the server closes ``response``, after sending it (``closing``): the
    span then covers the sending, as the HTTP semantic conventions' server duration does, and
    its attributes and end are built off the client's clock."""
    args = (span, request, method, response.status_code)
    closers = getattr(response, "_resource_closers", None)  # Django's own list; no public hook
    if type(closers) is list:
        closers.append(closing.EndAtClose(response, _end_request_span, args))
    else:  # not an HttpResponseBase: no close to wait for
        _end_request_span(*args)


def _end_request_span(span: trace.Span, request: HttpRequest, method: str, status_code: int | None,
                      outcome: streaming.Outcome = None, end_time: int | None = None) -> None:
    """The SERVER span's attributes from the request and the response's ``status_code``
    (None: no response), its error or disconnect (``outcome``, as ``streaming`` says), then
    its end (at ``end_time``, ns since the epoch; None: now), whatever failed before it.

    A server attribute the request's own code set on the span meanwhile (a ``client.address``
    from a proxy header, say) is kept: these were set at the start, before that code ran."""
    try:
        with guarded("recording the request span's attributes"):
            attributes = server_span.server_attributes(request, method, integration.query_params,
                                                       integration.request_headers)
            # One set operation: `key in span.attributes` costs two Python calls per key
            # (MappingProxyType over BoundedAttributes, whose __contains__ is Mapping's).
            kept = attributes.keys() & span.attributes.keys()
            if kept:
                attributes = {key: value for key, value in attributes.items() if key not in kept}
            server_span.record_response(span, request, method, status_code, attributes)
            if outcome == streaming.DISCONNECTED:
                server_span.record_disconnect(span)
            elif isinstance(outcome, BaseException):
                server_span.record_unhandled(span, request, outcome)
    finally:
        with guarded("ending the request span"):
            span.end(end_time)


def _stream_end(span: trace.Span, request: HttpRequest, method: str,
                status_code: int) -> Callable[[streaming.Outcome], None]:
    def end(outcome: streaming.Outcome) -> None:
        _end_request_span(span, request, method, status_code, outcome)
    return end


def _resolve_for_sampling(request: HttpRequest, attributes: dict[str, Any]) -> Any:
    """Resolve the route before the span starts (when a sampling rule needs it)."""
    try:
        match = get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
    except Resolver404:
        return None
    if match.route:
        attributes[HTTP_ROUTE] = match.route
    if integration.resolve_route_name and match.view_name:
        return sampling.current_route_name.set(match.view_name)
    return None
