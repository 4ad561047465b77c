"""Head sampling rules: first match wins, health checks never, children follow parents."""

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import sampling

from tests.tracing_settings import tracing_settings
from tracing_app import get_config, get_tracer
from tracing_app.conf import resolve
from tracing_app.pipeline.sampling import RuleSampler, never_sampled

KEEP, DROP = sampling.Decision.RECORD_AND_SAMPLE, sampling.Decision.DROP
RULES = [
    {"path": r"^/api/search", "method": "GET", "ratio": 0.0},
    {"path": r"^/api/", "ratio": 1.0},
    {"task": r"^reports\.", "ratio": 0.0},
    {"queue": r"^bulk$", "ratio": 0.0},
]


def decide(sampler, **attributes):
    return sampler.should_sample(None, 0x1234567890abcdef1234567890abcdef, "x", attributes=attributes).decision


def test_first_matching_rule_wins():
    sampler = RuleSampler(0.0, RULES)
    assert decide(sampler, **{"url.path": "/api/search", "http.request.method": "GET"}) == DROP
    assert decide(sampler, **{"url.path": "/api/search", "http.request.method": "POST"}) == KEEP
    assert decide(sampler, **{"url.path": "/api/orders/"}) == KEEP
    assert decide(sampler, **{"url.path": "/other"}) == DROP  # the default ratio
    assert decide(RuleSampler(1.0, RULES), **{"celery.task.name": "reports.monthly"}) == DROP
    assert decide(RuleSampler(1.0, RULES), **{"celery.task.name": "inventory.reserve_stock",
                                              "messaging.destination.name": "bulk"}) == DROP
    assert decide(RuleSampler(1.0, RULES), **{"celery.task.name": "inventory.reserve_stock"}) == KEEP


def test_rules_are_validated():
    problems = resolve({"SAMPLING_RULES": [{"path": "(", "ratio": 1}, {"ratio": 1}]}, {}).problems
    assert [p.check_id for p in problems] == ["tracing_app.E003"]
    assert resolve({"SAMPLING_RULES": [{"colour": "red", "ratio": 1}]}, {}).problems
    assert resolve({"SAMPLING_RULES": [{"method": "get", "ratio": 2}]}, {}).problems
    assert resolve({"SAMPLING_RULES": [{"method": "get", "ratio": 0.5}]}, {}).sampling_rules[0]["method"] == "GET"


@pytest.mark.urls("tests.business_urls")
def test_rules_by_path_method_and_route_name_in_the_middleware(client):
    rules = [{"route_name": "report", "ratio": 0.0}, {"method": "POST", "ratio": 0.0}, {"path": "^/api/", "ratio": 1}]
    with tracing_settings(SAMPLE_RATIO=0.0, SAMPLING_RULES=rules) as spans:
        assert client.get("/api/whoami/").status_code == 200  # path rule: kept
        assert client.get("/reports/7/").status_code == 200  # route name rule: dropped
        assert client.post("/api/whoami/").status_code == 200  # method rule: dropped
        assert client.get("/internal/whoami/").status_code == 200  # no rule: default 0
    assert sorted(spans.names()) == ["GET api/whoami/", "work"]


@pytest.mark.urls("tests.business_urls")
def test_route_regex_rule(client):
    with tracing_settings(SAMPLE_RATIO=1.0, SAMPLING_RULES=[{"route": r"<int:pk>", "ratio": 0}]) as spans:
        client.get("/reports/7/")
        client.get("/api/whoami/")
    assert "GET reports/<int:pk>/" not in spans.names() and "GET api/whoami/" in spans.names()


@pytest.mark.urls("tests.business_urls")
def test_health_checks_and_static_files_never_sampled(client, settings):
    settings.STATIC_URL = "/assets/"
    with tracing_settings(SAMPLE_RATIO=1.0, EXCLUDED_URLS=[]) as spans:
        assert client.get("/healthz").status_code == 200
        client.get("/assets/app.js")
        client.get("/api/whoami/")
        sampler = RuleSampler(1.0, never=never_sampled(get_config()))
    assert sorted(spans.names()) == ["GET api/whoami/", "work"]
    # Spans made by other instrumentation (not our middleware) are dropped by the sampler.
    assert decide(sampler, **{"url.path": "/healthz"}) == DROP
    assert decide(sampler, **{"url.path": "/assets/app.js"}) == DROP
    assert decide(sampler, **{"url.path": "/api/"}) == KEEP


def test_children_follow_the_parent_decision():
    with tracing_settings(SAMPLE_RATIO=1.0, SAMPLING_RULES=[{"task": "reports", "ratio": 0}]) as spans:
        with get_tracer().start_as_current_span("request"):
            # A rule that would drop this span as a root does not apply to a child.
            with get_tracer().start_as_current_span("send reports.x", attributes={"celery.task.name": "reports.x"}):
                pass
        dropped_parent = trace.NonRecordingSpan(trace.SpanContext(3, 4, True, trace.TraceFlags(0)))
        token = otel_context.attach(trace.set_span_in_context(dropped_parent))
        try:
            with get_tracer().start_as_current_span("child of a dropped remote parent"):
                pass
        finally:
            otel_context.detach(token)
    assert sorted(spans.names()) == ["request", "send reports.x"]


def test_task_rules_decide_a_publish_without_a_parent():
    """A command or beat publishing a task starts the trace: task and queue rules apply there."""
    from celery import Celery

    app = Celery("sampling", broker="memory://", set_as_current=False)
    rules = [{"task": r"^reports\.", "ratio": 0.0}, {"queue": "^bulk$", "ratio": 0.0}]
    with tracing_settings(SAMPLE_RATIO=1.0, SAMPLING_RULES=rules) as spans, app.connection_for_write() as conn:
        app.send_task("reports.monthly", connection=conn)
        app.send_task("orders.export", connection=conn, queue="bulk")
        app.send_task("orders.export", connection=conn, queue="default")
    assert spans.names() == ["send orders.export"]
    assert spans.records()[0].attributes["messaging.destination.name"] == "default"


@pytest.mark.urls("tests.business_urls")
def test_a_failing_resolver_never_fails_the_request(client, monkeypatch):
    from tracing_app.context import business

    def broken(request):
        raise RuntimeError("resolver bug")

    monkeypatch.setattr(business, "load_resolver", lambda path: broken)
    with tracing_settings() as spans:
        from tracing_app import safety

        safety.RAISE_ERRORS = False  # as in production: swallowed and logged once
        response = client.get("/api/whoami/", HTTP_AUTHORIZATION="Bearer acme-alice")
    assert response.status_code == 200
    assert "GET api/whoami/" in spans.names()
