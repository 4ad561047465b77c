"""The SERVER span against the stable HTTP server span conventions, for each way
Django can answer: a matched route of any shape, no route, a redirect, exceptions
Django converts, failures and answers from other middleware, HEAD and OPTIONS."""

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client, override_settings

from tests.captured import only_span

pytestmark = pytest.mark.urls("tests.urls")

OUR_MIDDLEWARE = "tracing_app.TracingMiddleware"
COMMON = "django.middleware.common.CommonMiddleware"


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def assert_not_an_error(span):
    """Semconv: a status below 500 leaves a SERVER span's status unset, without error.type,
    and an exception Django handled is not recorded."""
    assert not span.error and span.status_message == ""
    assert "error.type" not in span.attributes
    assert span.events == ()


@pytest.mark.parametrize(("path", "route"), [
    ("/shop/items/42/", "shop/items/<int:pk>/"),  # include() + path converter
    ("/legacy/2024/", "^legacy/(?P<year>[0-9]{4})/$"),  # re_path
    ("/catalog/12/", "^catalog/(?P<pk>\\d+)/$"),  # re_path inside re_path include()
    ("/catalog/sections/tools/pages/3/", "^catalog/sections/<str:section>/pages/<int:pk>/"),  # mixed nesting
    ("/en-us/about/7/", "en-us/about/<int:pk>/"),  # i18n_patterns: the active language's prefix
])
def test_route_is_djangos_template_whatever_its_shape(client, captured_spans, path, route):
    assert client.get(path).status_code == 200
    span = only_span(captured_spans)
    assert (span.name, span.attributes["http.route"]) == (f"GET {route}", route)
    assert span.attributes["url.path"] == path
    assert_not_an_error(span)


@pytest.mark.parametrize("language", ["de", "fr"])
def test_i18n_route_follows_the_requested_language(client, captured_spans, language):
    """LocaleMiddleware activates the path's language: the route keeps Django's prefix for it,
    one route per language in LANGUAGES (a bounded set, as the conventions ask)."""
    with override_settings(LANGUAGES=[("en-us", "English"), ("de", "German"), ("fr", "French")],
                           MIDDLEWARE=[OUR_MIDDLEWARE, "django.middleware.locale.LocaleMiddleware"]):
        assert client.get(f"/{language}/about/7/").status_code == 200
    span = only_span(captured_spans)
    assert span.name == f"GET {language}/about/<int:pk>/"


def test_404_without_route_has_no_route_and_is_not_an_error(client, captured_spans):
    assert client.get("/no/such/page/").status_code == 404
    span = only_span(captured_spans)
    assert span.name == "GET"
    assert "http.route" not in span.attributes
    assert span.attributes["http.response.status_code"] == 404
    assert_not_an_error(span)


@pytest.mark.parametrize(("path", "status", "route"), [
    ("/missing/shoe/", 404, "missing/<slug:name>/"),  # Http404
    ("/forbidden/", 403, "forbidden/"),  # PermissionDenied
    ("/bad/", 400, "bad/"),  # BadRequest
    ("/suspicious/", 400, "suspicious/"),  # SuspiciousOperation
    ("/too-big/", 400, "too-big/"),  # a SuspiciousOperation subclass
    ("/multipart/", 400, "multipart/"),  # MultiPartParserError
])
def test_exceptions_django_turns_into_4xx_are_not_errors(client, captured_spans, path, status, route):
    assert client.get(path).status_code == status
    span = only_span(captured_spans)
    assert (span.name, span.attributes["http.route"]) == (f"GET {route}", route)
    assert span.attributes["http.response.status_code"] == status
    assert_not_an_error(span)


@pytest.mark.parametrize(("debug", "status"), [(False, 404), (True, 400)])
def test_4xx_exceptions_are_not_errors_with_debug_pages_either(client, captured_spans, debug, status):
    with override_settings(DEBUG=debug):
        client.get("/missing/shoe/" if status == 404 else "/bad/")
    assert_not_an_error(only_span(captured_spans))


def test_append_slash_redirect(client, captured_spans):
    response = client.get("/ok")
    assert (response.status_code, response["Location"]) == (301, "/ok/")
    span = only_span(captured_spans)
    assert span.name == "GET" and "http.route" not in span.attributes, "/ok matched nothing"
    assert span.attributes["http.response.status_code"] == 301
    assert_not_an_error(span)


def test_view_exception_is_recorded_once_with_its_type(client, captured_spans):
    assert client.get("/boom/").status_code == 500
    span = only_span(captured_spans)
    assert span.error and span.attributes["error.type"] == "RuntimeError"
    assert [name for name, _ in span.events] == ["exception"]
    assert span.attributes["http.route"] == "boom/"


@pytest.mark.parametrize(("phase", "error_type"), [("request", "LookupError"), ("response", "KeyError")])
def test_exception_in_a_later_middleware_is_the_error(client, captured_spans, phase, error_type):
    with override_settings(MIDDLEWARE=[OUR_MIDDLEWARE, "tests.http_middleware.FailingMiddleware"]):
        assert client.get("/shop/items/3/", headers={"X-Fail": phase}).status_code == 500
    span = only_span(captured_spans)
    assert span.error and span.attributes["error.type"] == error_type
    assert [name for name, _ in span.events] == ["exception"]
    # Before the view (request phase) nothing was resolved yet: the route is still the path's.
    assert span.attributes["http.route"] == "shop/items/<int:pk>/"
    assert span.attributes["http.response.status_code"] == 500


@pytest.mark.parametrize(("status", "error"), [(429, False), (302, False), (503, True)])
def test_answer_from_another_middlewares_process_request(client, captured_spans, status, error):
    with override_settings(MIDDLEWARE=[OUR_MIDDLEWARE, "tests.http_middleware.AnswerEarlyMiddleware"]):
        assert client.get("/shop/items/3/", headers={"X-Answer": str(status)}).status_code == status
    span = only_span(captured_spans)
    assert span.name == "GET shop/items/<int:pk>/", "the route the request was for"
    assert span.attributes["http.response.status_code"] == status
    if error:
        assert span.error and span.attributes["error.type"] == str(status) and span.events == ()
    else:
        assert_not_an_error(span)


def test_answer_from_another_middleware_for_an_unknown_path_has_no_route(client, captured_spans):
    with override_settings(MIDDLEWARE=[OUR_MIDDLEWARE, "tests.http_middleware.AnswerEarlyMiddleware"]):
        client.get("/nowhere/", headers={"X-Answer": "429"})
    span = only_span(captured_spans)
    assert span.name == "GET" and "http.route" not in span.attributes


def test_head(client, captured_spans):
    response = client.head("/shop/items/3/")
    assert (response.status_code, response.content) == (200, b"")
    span = only_span(captured_spans)
    assert span.name == "HEAD shop/items/<int:pk>/"
    assert span.attributes["http.request.method"] == "HEAD"
    assert_not_an_error(span)


def test_options(client, captured_spans):
    response = client.options("/resource/")
    assert response.status_code == 200 and "GET" in response["Allow"]
    span = only_span(captured_spans)
    assert (span.name, span.attributes["http.request.method"]) == ("OPTIONS resource/", "OPTIONS")
    assert_not_an_error(span)


def test_method_not_allowed_is_a_4xx(client, captured_spans):
    assert client.delete("/resource/").status_code == 405
    span = only_span(captured_spans)
    assert span.name == "DELETE resource/"
    assert_not_an_error(span)


@pytest.mark.parametrize(("host", "address", "port"), [
    ("[::1]:8000", "::1", 8000),
    ("[2001:db8::7]", "2001:db8::7", None),
    ("shop.example", "shop.example", None),
    ("10.0.0.5:8080", "10.0.0.5", 8080),
])
def test_server_address_and_port_from_host(captured_spans, host, address, port):
    Client(HTTP_HOST=host).get("/ok/")
    attributes = only_span(captured_spans).attributes
    assert attributes["server.address"] == address
    assert attributes.get("server.port") == port


def test_exception_propagated_by_django_is_recorded(captured_spans):
    with override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True), pytest.raises(RuntimeError):
        Client().get("/boom/")
    span = only_span(captured_spans)
    assert span.error and span.attributes["error.type"] == "RuntimeError"
    assert [name for name, _ in span.events] == ["exception"], "recorded once (signal, then the raise)"
    assert "http.response.status_code" not in span.attributes


ANSWERS = [  # (how Django answers, method, path, headers, middleware, status, route, error.type)
    ("resolved route", "get", "/shop/items/42/", {}, None, 200, "shop/items/<int:pk>/", None),
    ("no route", "get", "/no/such/page/", {}, None, 404, None, None),
    ("APPEND_SLASH redirect", "get", "/ok", {}, None, 301, None, None),
    ("Http404", "get", "/missing/shoe/", {}, None, 404, "missing/<slug:name>/", None),
    ("PermissionDenied", "get", "/forbidden/", {}, None, 403, "forbidden/", None),
    ("SuspiciousOperation", "get", "/suspicious/", {}, None, 400, "suspicious/", None),
    ("BadRequest", "get", "/bad/", {}, None, 400, "bad/", None),
    ("later middleware raises", "get", "/shop/items/3/", {"X-Fail": "request"},
     "tests.http_middleware.FailingMiddleware", 500, "shop/items/<int:pk>/", "LookupError"),
    ("another middleware answers", "get", "/shop/items/3/", {"X-Answer": "429"},
     "tests.http_middleware.AnswerEarlyMiddleware", 429, "shop/items/<int:pk>/", None),
    ("HEAD", "head", "/shop/items/3/", {}, None, 200, "shop/items/<int:pk>/", None),
    ("OPTIONS", "options", "/resource/", {}, None, 200, "resource/", None),
    ("view raises", "get", "/boom/", {}, None, 500, "boom/", "RuntimeError"),
    ("view answers 503", "get", "/unavailable/", {}, None, 503, "unavailable/", "503"),
]


@pytest.mark.parametrize("handler", ["wsgi", "asgi"])
@pytest.mark.parametrize(("method", "path", "headers", "middleware", "status", "route", "error_type"),
                         [answer[1:] for answer in ANSWERS], ids=[answer[0] for answer in ANSWERS])
def test_every_answer_has_the_same_server_attributes_under_wsgi_and_asgi(
        captured_spans, handler, method, path, headers, middleware, status, route, error_type):
    """The whole attribute set of the stable HTTP server span conventions, each way Django answers."""
    headers = {**headers, "User-Agent": "semconv-check/1.0"}
    with override_settings(MIDDLEWARE=[OUR_MIDDLEWARE, *([middleware] if middleware else []), COMMON]):
        if handler == "wsgi":
            response = getattr(Client(raise_request_exception=False), method)(f"{path}?page=2", headers=headers)
        else:
            client = AsyncClient(raise_request_exception=False)
            response = async_to_sync(getattr(client, method))(f"{path}?page=2", headers=headers)
    assert response.status_code == status
    span = only_span(captured_spans)
    expected = {
        "http.request.method": method.upper(), "url.path": path, "url.scheme": "http",
        "server.address": "testserver", "client.address": "127.0.0.1", "user_agent.original": "semconv-check/1.0",
        "network.protocol.version": "1.1", "http.response.status_code": status, "url.query": "page=REDACTED",
        **({"http.route": route} if route else {}), **({"error.type": error_type} if error_type else {}),
    }
    assert dict(span.attributes) == expected, "url.query values only with RECORD_QUERY_PARAMS (privacy)"
    assert span.name == (f"{method.upper()} {route}" if route else method.upper())
    assert span.error is (error_type is not None)
    assert [name for name, _ in span.events] == (["exception"] if error_type and not error_type.isdigit() else [])
