"""Business context in baggage, copied onto spans, behind the trust boundary."""

import json

import pytest
from django.core.checks import run_checks
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from tests.tracing_settings import tracing_settings
from tracing_app import business_context, get_tracer
from tracing_app.context.business import BaggageSpanProcessor, user_context
from tracing_app.context.propagators import with_baggage

pytestmark = pytest.mark.urls("tests.business_urls")

REMOTE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
REMOTE_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{REMOTE_TRACE}-{REMOTE_SPAN}-01"
ALICE = {"HTTP_AUTHORIZATION": "Bearer acme-alice"}  # tenant acme, user 101 (project/settings.py)


def get(client, path="/api/whoami/", **headers):
    response = client.get(path, **headers)
    assert response.status_code == 200
    return json.loads(response.content)


def spans_by_name(spans):
    return {span.name: span for span in spans.records()}


def test_resolver_puts_ids_in_baggage_and_on_every_span(client):
    with tracing_settings() as spans:
        body = get(client, **ALICE)
    assert body["context"] == {"enduser.id": "101", "tenant.id": "acme"}
    found = spans_by_name(spans)
    for name in ("GET api/whoami/", "work"):
        assert found[name].attributes["enduser.id"] == "101"
        assert found[name].attributes["tenant.id"] == "acme"
    exported = spans.otlp_bytes()
    assert b"alice" not in exported, "user names and e-mails never become attributes"


def test_forged_tenant_from_a_client_is_dropped(client):
    with tracing_settings() as spans:
        anonymous = get(client, HTTP_BAGGAGE="tenant.id=globex,enduser.id=1,campaign=spring",
                        HTTP_TRACEPARENT=TRACEPARENT)
        alice = get(client, HTTP_BAGGAGE="tenant.id=globex", **ALICE)
    assert anonymous["context"] == {}
    assert anonymous["baggage"] == {"campaign": "spring"}  # keys the app does not set pass
    assert anonymous["trace_id"] == REMOTE_TRACE  # the trace context is kept
    assert alice["context"]["tenant.id"] == "acme"
    tenants = [span.attributes.get("tenant.id") for span in spans.records()]
    assert "globex" not in tenants and "acme" in tenants
    assert b"globex" not in spans.otlp_bytes()


def test_trusted_route_prefix_keeps_incoming_baggage(client):
    with tracing_settings(INCOMING_POLICY_ROUTES={"/internal/": "trust"}) as spans:
        internal = get(client, "/internal/whoami/", HTTP_BAGGAGE="tenant.id=globex")
        public = get(client, HTTP_BAGGAGE="tenant.id=globex")
    assert internal["context"] == {"tenant.id": "globex"}
    assert public["context"] == {}
    assert spans_by_name(spans)["GET internal/whoami/"].attributes["tenant.id"] == "globex"


def test_link_policy_starts_a_new_trace_linked_to_the_remote_one(client):
    with tracing_settings(INCOMING_POLICY="link") as spans:
        body = get(client, HTTP_TRACEPARENT=TRACEPARENT, HTTP_BAGGAGE="campaign=spring")
    server = spans_by_name(spans)["GET api/whoami/"]
    assert server.trace_id == body["trace_id"] != REMOTE_TRACE
    assert server.parent_id == ""
    assert server.links == ((REMOTE_TRACE, REMOTE_SPAN),)
    assert body["baggage"] == {}


def test_hashed_values_and_the_allowlist(client):
    with tracing_settings(BAGGAGE_SPAN_ATTRIBUTES=["tenant.id", "enduser.id"], BAGGAGE_HASHED=["enduser.id"],
                          BAGGAGE_HASH_KEY="k") as spans:
        get(client, **ALICE)
    with tracing_settings(BAGGAGE_SPAN_ATTRIBUTES=["tenant.id"]) as only_tenant:
        get(client, **ALICE)
    work = spans_by_name(spans)["work"]
    assert work.attributes["tenant.id"] == "acme"
    assert len(work.attributes["enduser.id"]) == 16 and work.attributes["enduser.id"] != "101"
    assert "enduser.id" not in spans_by_name(only_tenant)["work"].attributes


def test_resolver_can_be_switched_off(client):
    with tracing_settings(BAGGAGE_RESOLVER="") as spans:
        body = get(client, **ALICE)
    assert body["context"] == {}
    assert "tenant.id" not in spans_by_name(spans)["work"].attributes


def test_processor_copies_only_allowlisted_keys():
    processor = BaggageSpanProcessor(("tenant.id",))
    with tracing_settings() as spans:
        token = otel_context.attach(with_baggage({"tenant.id": "acme", "secret": "x"}))
        try:
            with get_tracer().start_as_current_span("task work"):
                assert business_context() == {"tenant.id": "acme"}
        finally:
            otel_context.detach(token)
    assert spans.records()[0].attributes == {"tenant.id": "acme"}
    assert processor.attributes({"tenant.id": "acme", "secret": "x"}) == {"tenant.id": "acme"}
    assert business_context(Context()) == {}


def test_default_resolver_reads_ids_only():
    class User:
        pk, username, email, is_authenticated, tenant_id = 5, "bob", "bob@example.com", True, "globex"

    class Request:
        user = User()

    assert user_context(Request()) == {"enduser.id": "5", "tenant.id": "globex"}


def test_unimportable_resolver_is_reported(settings):
    settings.TRACING = {**settings.TRACING, "BAGGAGE_RESOLVER": "nowhere.resolver"}
    assert "tracing_app.E007" in [message.id for message in run_checks()]
