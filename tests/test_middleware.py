"""HTTP server spans from TracingMiddleware, driven through Django's test client."""

import pytest
from django.test import Client, override_settings

from tests.captured import only_span
from tracing_app.integrations.django import closing, middleware

pytestmark = pytest.mark.urls("tests.urls")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def test_span_is_named_by_route_template_not_raw_path(client, captured_spans):
    assert client.get("/shop/items/42/").status_code == 200
    span = only_span(captured_spans)
    assert (span.name, span.kind) == ("GET shop/items/<int:pk>/", "SERVER")
    assert span.attributes["http.route"] == "shop/items/<int:pk>/"
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.path"] == "/shop/items/42/"
    assert "42" not in span.name


def test_unmatched_path_is_named_by_method_only(client, captured_spans):
    assert client.get("/no/such/page/").status_code == 404
    assert only_span(captured_spans).name == "GET"


def test_incoming_traceparent_is_continued(client, captured_spans):
    response = client.get("/ok/", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    span = only_span(captured_spans)
    assert (span.trace_id, span.parent_id) == (TRACE_ID, PARENT_ID)
    assert response["traceresponse"] == f"00-{TRACE_ID}-{span.span_id}-01"
    assert response["Server-Timing"] == f"trace;desc=00-{TRACE_ID}-{span.span_id}-01"


def test_without_traceparent_a_new_trace_starts_and_traceresponse_names_it(client, captured_spans):
    response = client.get("/ok/")
    span = only_span(captured_spans)
    assert span.parent_id == ""
    version, trace_id, span_id, flags = response["traceresponse"].split("-")
    assert (version, trace_id, span_id) == ("00", span.trace_id, span.span_id)
    assert int(flags, 16) & 1, "sampled flag set"


def test_malformed_traceparent_starts_a_new_trace(client, captured_spans):
    response = client.get("/ok/", headers={"traceparent": "00-zzzz-not-hex-01"})
    assert response.status_code == 200
    assert only_span(captured_spans).parent_id == ""


def test_view_exception_marks_span_error_with_exception_event(client, captured_spans):
    assert client.get("/boom/").status_code == 500
    span = only_span(captured_spans)
    assert span.error
    assert span.attributes["error.type"] == "RuntimeError"
    assert [name for name, _ in span.events] == ["exception"]


def test_5xx_response_is_an_error_4xx_is_not(client, captured_spans):
    client.get("/unavailable/")
    client.get("/no/such/page/")
    errors = {s.attributes["http.response.status_code"]: s.error for s in captured_spans.records()}
    assert errors == {503: True, 404: False}


def test_unknown_method_is_other(client, captured_spans):
    client.generic("FROBNICATE", "/ok/")
    span = only_span(captured_spans)
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "FROBNICATE"
    assert span.name == "HTTP ok/", "semconv: HTTP stands for a method outside the known set"


def test_the_trace_metric_follows_the_views_own_server_timing_metrics(client, captured_spans):
    # W3C Trace Context Level 2 editor's draft, "Trace Context Server Timing Metric Format".
    response = client.get("/timed/", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    span_id = response["traceresponse"].split("-")[2]
    assert response["Server-Timing"] == (
        f'db;dur=53, cache;desc="Cache Read";dur=23.2, trace;desc=00-{TRACE_ID}-{span_id}-00')


def test_a_response_served_again_names_only_its_own_trace(rf, captured_spans):
    # Django's cache middleware serves the same response object again: its trace metric is
    # replaced, the view's own metrics (a quoted description with a comma too) are kept.
    from django.http import HttpResponse

    cached = HttpResponse("cached")
    cached["Server-Timing"] = 'db;desc="a, trace";dur=1'

    def view(request):
        return cached

    traced = middleware.TracingMiddleware(view)
    first = traced(rf.get("/cached/"))["Server-Timing"]
    second = traced(rf.get("/cached/"))["Server-Timing"]
    assert first.startswith('db;desc="a, trace";dur=1, trace;desc=00-')
    assert second.startswith('db;desc="a, trace";dur=1, trace;desc=00-') and second.count("trace;desc") == 1
    assert first != second


def test_the_span_ends_when_the_server_closes_the_response_it_sent(rf, captured_spans):
    """WSGI servers and Django's ASGI handler close a response after sending it: the span
    covers the sending, and its attributes and end are built then, off the client's clock."""
    from django.http import HttpResponse

    traced = middleware.TracingMiddleware(lambda request: HttpResponse("made", status=201))
    response = traced(rf.post("/ok/?page=2"))
    assert response["traceresponse"], "the response names its span before it is sent"
    assert captured_spans.records() == [], "sent, not yet closed: the span is still open"
    response.close()
    span = only_span(captured_spans)
    assert span.attributes["http.response.status_code"] == 201
    assert span.attributes["url.query"] == "page=REDACTED" and span.attributes["url.scheme"] == "http"
    response.close()  # a second close ends nothing again
    assert len(captured_spans.records()) == 1


def test_a_response_nobody_closes_still_ends_its_span_when_it_is_dropped(rf, captured_spans):
    """A test calling the middleware itself, or an outer middleware answering with another
    response: the span ends when the response object goes, with the status it had."""
    import gc

    from django.http import HttpResponse

    traced = middleware.TracingMiddleware(lambda request: HttpResponse("gone", status=202))
    response = traced(rf.get("/ok/"))
    assert captured_spans.records() == []
    del response
    gc.collect()
    # Collected, maybe inside the garbage collector with a lock held: only queued (closing.py),
    # ended where no lock is held: the next request, or here when the test reads its spans.
    assert not closing.nothing_dropped()
    assert only_span(captured_spans).attributes["http.response.status_code"] == 202
    assert closing.nothing_dropped()


def test_a_response_cached_above_the_middleware_is_served_again_without_ending_a_span_twice(captured_spans, caplog):
    """Django's docs put UpdateCacheMiddleware first; a project that keeps it above ours (W002
    says ours should be first) has the response pickled while its span still waits for the close."""
    from django.core.cache import caches

    cache_first = ["django.middleware.cache.UpdateCacheMiddleware", "tracing_app.TracingMiddleware",
                   "django.middleware.cache.FetchFromCacheMiddleware"]
    with override_settings(MIDDLEWARE=cache_first, CACHE_MIDDLEWARE_SECONDS=60,
                           CACHE_MIDDLEWARE_KEY_PREFIX="test-cached-twice"):
        client = Client()
        try:
            first, second = client.get("/shop/items/7/"), client.get("/shop/items/7/")
        finally:
            caches["default"].clear()
    assert first.content == second.content and first["traceresponse"] != second["traceresponse"]
    spans = [span for span in captured_spans.records() if span.kind == "SERVER"]  # the cache's own spans aside
    assert [span.attributes["http.response.status_code"] for span in spans] == [200, 200]
    assert len({span.span_id for span in spans}) == 2
    assert "Calling end() on an ended span" not in caplog.text


HELD_BY_OUTER = []


def failing_outer_middleware(get_response):
    """Listed above ours: keeps our response (as a failing cache write would) and raises."""
    def middleware(request):
        HELD_BY_OUTER.append(get_response(request))
        raise RuntimeError("outer layer broke")
    return middleware


def test_an_outer_middlewares_failure_after_the_answer_is_not_this_spans(captured_spans):
    """The span describes the response this middleware answered with; an exception a middleware
    above it raises afterwards makes another response (W002 asks for ours to be first)."""
    outer_first = ["tests.test_middleware.failing_outer_middleware", "tracing_app.TracingMiddleware"]
    with override_settings(MIDDLEWARE=outer_first):
        assert Client(raise_request_exception=False).get("/ok/").status_code == 500
    assert captured_spans.records() == [], "our response was never sent nor closed"
    HELD_BY_OUTER.pop().close()
    span = only_span(captured_spans)
    assert span.attributes["http.response.status_code"] == 200 and "error.type" not in span.attributes
    assert not span.error


def test_a_server_attribute_the_request_set_itself_is_kept(rf, captured_spans):
    """The server attributes are built at the end now; one the request's own code set on the
    span (a client address from a proxy header) still wins, as when they were set at the start."""
    from django.http import HttpResponse
    from opentelemetry import trace

    def view(request):
        trace.get_current_span().set_attribute("client.address", "203.0.113.9")
        return HttpResponse("ok")

    middleware.TracingMiddleware(view)(rf.get("/ok/")).close()
    span = only_span(captured_spans)
    assert span.attributes["client.address"] == "203.0.113.9" and span.attributes["url.scheme"] == "http"


def test_a_failure_ending_the_span_at_close_still_fails_the_test(rf, monkeypatch):
    """Django's close() swallows its closers' exceptions: under RAISE_ERRORS ours is raised
    again when the capture ends, and the span still ends."""
    from django.http import HttpResponse

    from tracing_app.testing import capture_spans

    def broken(*args):
        raise RuntimeError("server attributes broke")

    monkeypatch.setattr(middleware.server_span, "server_attributes", broken)
    with pytest.raises(RuntimeError, match="server attributes broke"), capture_spans() as spans:
        middleware.TracingMiddleware(lambda request: HttpResponse("ok"))(rf.get("/ok/")).close()
        assert len(spans.records()) == 1, "ended all the same"


def test_excluded_urls_produce_no_span(client, captured_spans):
    # The demo settings exclude ^/healthz$.
    assert client.get("/healthz").status_code == 200
    assert captured_spans.records() == []
    answer = client.get("/healthz")
    assert "traceresponse" not in answer and "Server-Timing" not in answer


def test_excluded_urls_follow_the_setting(captured_spans):
    integration = middleware.integration
    previous = integration.excluded
    try:
        integration.uninstall()
        with override_settings(TRACING={"EXCLUDED_URLS": [r"^/ok/"]}):
            from tracing_app.conf import get_config

            integration.install(get_config())
            Client().get("/ok/")
            Client().get("/shop/items/1/")
        assert captured_spans.names() == ["GET shop/items/<int:pk>/"]
    finally:
        integration.uninstall()
        integration.install(__import__("tracing_app.conf").conf.get_config())
        assert integration.excluded.pattern == previous.pattern


def test_middleware_removes_itself_when_tracing_is_off(captured_spans):
    middleware.integration.uninstall()
    try:
        response = Client().get("/ok/")
        assert "traceresponse" not in response
        assert captured_spans.records() == []
    finally:
        from tracing_app.conf import get_config

        middleware.integration.install(get_config())


def test_a_recorded_request_span_has_every_server_attribute(captured_spans):
    Client(HTTP_USER_AGENT="bench/1.0", HTTP_HOST="shop.example:8443").get("/shop/items/42/?page=2")
    assert only_span(captured_spans).attributes == {
        "http.request.method": "GET",
        "url.path": "/shop/items/42/",
        "url.scheme": "http",
        "url.query": "page=REDACTED",
        "server.address": "shop.example",
        "server.port": 8443,
        "client.address": "127.0.0.1",
        "user_agent.original": "bench/1.0",
        "network.protocol.version": "1.1",
        "http.route": "shop/items/<int:pk>/",
        "http.response.status_code": 200,
    }


def test_an_unsampled_request_builds_only_what_the_sampler_reads(client, monkeypatch):
    from tests.tracing_settings import tracing_settings

    built = []
    server_attributes = middleware.server_span.server_attributes
    monkeypatch.setattr(middleware.server_span, "server_attributes",
                        lambda *args: built.append(args) or server_attributes(*args))
    with tracing_settings(SAMPLE_RATIO=0.0) as dropped:
        response = client.get("/ok/")
    assert dropped.records() == [] and built == []
    assert not int(response["traceresponse"].split("-")[3], 16) & 1, "still answers, with the sampled flag off"
    with tracing_settings(SAMPLE_RATIO=1.0) as kept:
        client.get("/ok/")
    assert len(built) == 1 and kept.records()[0].attributes["url.scheme"] == "http"


def test_a_failure_ending_the_requests_work_still_leaves_its_context(client, captured_spans, monkeypatch):
    """Tests run with RAISE_ERRORS, so our own failure leaves the middleware here: the request's
    span must not stay current in the thread after it (it would parent the next test's spans)."""
    from opentelemetry import trace

    from tracing_app.context import work

    def broken(opened):
        raise RuntimeError("work broke")

    monkeypatch.setattr(work, "end", broken)
    assert client.get("/ok/").status_code == 500  # Django turns it into a 500 around our middleware
    assert not trace.get_current_span().get_span_context().is_valid


def test_other_propagators_are_asked_even_without_w3c_headers(client, captured_spans):
    """The shortcut for a request without traceparent/baggage holds for the default W3C pair
    only: a request carrying another format's header is still extracted."""
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.propagators.textmap import TextMapPropagator

    class HeaderPair(TextMapPropagator):  # "x-trace: <trace-id>-<span-id>", as b3 or jaeger would carry it
        def extract(self, carrier, context=None, getter=None):
            value = (getter.get(carrier, "x-trace") or [""])[0]
            if "-" not in value:
                return context
            trace_id, span_id = (int(part, 16) for part in value.split("-"))
            remote = trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(1))
            return trace.set_span_in_context(trace.NonRecordingSpan(remote), context)

        def inject(self, carrier, context=None, setter=None):
            pass

        @property
        def fields(self):
            return {"x-trace"}

    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([HeaderPair()]))
    try:
        assert client.get("/ok/", headers={"x-trace": f"{TRACE_ID}-{PARENT_ID}"}).status_code == 200
    finally:
        propagate.set_global_textmap(previous)
    span = only_span(captured_spans)
    assert (span.trace_id, span.parent_id) == (TRACE_ID, PARENT_ID)


def test_an_exception_leaving_the_handler_leaves_the_context_even_when_ending_the_work_fails(captured_spans,
                                                                                            monkeypatch):
    from opentelemetry import trace

    from tracing_app.context import work

    def broken(opened):
        raise RuntimeError("work broke")

    monkeypatch.setattr(work, "end", broken)
    with override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True), pytest.raises(RuntimeError):
        Client().get("/boom/")  # the view's error leaves the handler (middleware._fail)
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_dropped_responses_span_ends_at_the_next_request_at_the_time_it_was_collected(rf, captured_spans):
    import time

    from django.http import HttpResponse

    traced = middleware.TracingMiddleware(lambda request: HttpResponse("gone", status=202))
    response = traced(rf.get("/ok/"))
    before = time.time_ns()
    del response  # no cycle: collected here
    after = time.time_ns()
    traced(rf.get("/ok/")).close()  # its _begin ends the dropped one
    dropped, closed = captured_spans._exporter.get_finished_spans()  # not records(): it would drain too
    assert before <= dropped.end_time <= after < closed.start_time
    assert dropped.attributes["http.response.status_code"] == 202
