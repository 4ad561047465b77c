"""The SERVER span's name, attributes and status, by the HTTP semantic conventions.

Follows the stable HTTP server span conventions (semantic-conventions
``docs/http/http-spans.md``, v1.x):

- name ``{method} {http.route}``, or ``{method}`` when no route matched; ``HTTP``
  stands for the method when it is not a known one (``http.request.method=_OTHER``);
- ``http.route`` is Django's route template (``ResolverMatch.route``: ``path()``
  converters, ``re_path()`` regexes and ``include()`` prefixes joined, as Django
  spells them), and is absent when nothing matched;
- status: left unset for every response below 500, 4xx included (a 4xx is the
  client's error, not the server's); ERROR for 5xx, with ``error.type`` the
  exception's type when an exception made the 500 and the status code otherwise.
  Exceptions that Django turns into a 4xx (``Http404``, ``PermissionDenied``,
  ``BadRequest``, ``SuspiciousOperation``, ``MultiPartParserError``) are handled
  by Django and leave no trace on the span.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import Resolver404, get_resolver
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from tracing_app.context import privacy
from tracing_app.semconv import (
    CLIENT_ADDRESS,
    ERROR_TYPE,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
    NETWORK_PROTOCOL_VERSION,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_QUERY,
    URL_SCHEME,
    USER_AGENT_ORIGINAL,
)

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "_OTHER"
# The span name's method part for a method outside KNOWN_METHODS (semconv: "HTTP").
OTHER_METHOD_NAME = "HTTP"
REQUEST_ERROR_ATTRIBUTE = "_tracing_app_error_recorded"
# error.type when the client went away before the response was sent in full: Django's
# own name for that event (django.core.exceptions.RequestAborted).
CLIENT_DISCONNECTED_TYPE = "RequestAborted"


def split_host(host: str) -> tuple[str, int | None]:
    """``host[:port]`` from a Host header or SERVER_NAME, IPv6 literals included:
    ``[::1]:8000`` is ``("::1", 8000)``."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    else:  # a name, or a bare IPv6 address without brackets
        name, port = host, ""
    return name, (int(port) if port.isdigit() else None)


def server_attributes(request: HttpRequest, method: str, query_params: frozenset[str],
                      request_headers: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The request span's attributes besides those the sampler reads (those are set at
    start): read when the span ends, from the request as the handler left it."""
    meta = request.META
    attributes: dict[str, Any] = {URL_SCHEME: request.scheme or "http"}
    query = meta.get("QUERY_STRING")
    if query:  # Conditionally Required when a query was received; values redacted unless allowed
        attributes[URL_QUERY] = privacy.redacted_query(query, query_params)
    for meta_key, attribute in request_headers:
        value = meta.get(meta_key)
        if isinstance(value, str):
            attributes[attribute] = (value[:privacy.MAX_HEADER_VALUE],)
    if method == OTHER_METHOD:
        attributes[HTTP_REQUEST_METHOD_ORIGINAL] = request.method or ""
    host = meta.get("HTTP_HOST") or meta.get("SERVER_NAME")
    if host:
        if ":" not in host:  # the usual cases first, without a call more than needed
            name, port = host, None
        elif host[0] != "[" and host.count(":") == 1:
            name, _, port_text = host.partition(":")
            port = int(port_text) if port_text.isdigit() else None
        else:
            name, port = split_host(host)
        if name:
            attributes[SERVER_ADDRESS] = name
            if port is not None:
                attributes[SERVER_PORT] = port
    if meta.get("REMOTE_ADDR"):
        attributes[CLIENT_ADDRESS] = meta["REMOTE_ADDR"]
    if meta.get("HTTP_USER_AGENT"):
        attributes[USER_AGENT_ORIGINAL] = meta["HTTP_USER_AGENT"]
    protocol = meta.get("SERVER_PROTOCOL", "")
    if protocol.startswith("HTTP/"):
        attributes[NETWORK_PROTOCOL_VERSION] = protocol[5:]
    else:
        # ASGIRequest has no SERVER_PROTOCOL; the ASGI scope says "1.1", "2" or "3".
        scope = getattr(request, "scope", None)
        version = scope.get("http_version") if isinstance(scope, dict) else None
        if isinstance(version, str) and version:
            attributes[NETWORK_PROTOCOL_VERSION] = version
    return attributes


def resolve_route(request: HttpRequest) -> str | None:
    """The route the request's path matches (None: no match)."""
    try:
        match = get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
    except Resolver404:
        return None
    return match.route or None


def record_response(span: trace.Span, request: HttpRequest, method: str, status_code: int | None,
                    attributes: dict[str, Any]) -> None:
    """Name, route, status code and status from the response (``status_code`` None: no
    response came), set with ``attributes`` (``server_attributes``) in one call.

    The route is the one Django matched or, when the answer came before URL resolution
    (another middleware answered from ``process_request`` or raised), the one the path
    matches. A 404 without a match is not resolved again."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        route = match.route
    elif status_code != 404:
        route = resolve_route(request)
    else:
        route = None
    if route:
        span.update_name(f"{OTHER_METHOD_NAME if method == OTHER_METHOD else method} {route}")
        attributes[HTTP_ROUTE] = route
    if status_code is not None:
        attributes[HTTP_RESPONSE_STATUS_CODE] = status_code
        if status_code >= 500 and not getattr(request, REQUEST_ERROR_ATTRIBUTE, False):
            attributes[ERROR_TYPE] = str(status_code)
            span.set_status(Status(StatusCode.ERROR))
    # One set_attributes call: the span takes its lock once, not per attribute.
    span.set_attributes(attributes)


def record_unhandled(span: trace.Span, request: HttpRequest, exc: BaseException) -> None:
    """An exception that makes a 500 (Django's ``got_request_exception``) or leaves the handler."""
    privacy.record_error(span, exc)
    setattr(request, REQUEST_ERROR_ATTRIBUTE, True)


def record_disconnect(span: trace.Span) -> None:
    """The client went away before the whole response was sent (a cut stream, a cancelled
    ASGI request). The status code, if any, was already sent; the span says the response
    did not arrive."""
    span.set_attribute(ERROR_TYPE, CLIENT_DISCONNECTED_TYPE)
    span.set_status(Status(StatusCode.ERROR, "client disconnected"))
