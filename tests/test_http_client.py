"""Outgoing HTTP with requests: a CLIENT span, and traceparent in the request's headers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from django.conf import settings
from django.test import override_settings

from tracing_app.integrations.http_client import integration
from tracing_app.pipeline.provider import get_tracer
from tracing_app.testing import Expect, assert_trace

from .e2e.stack import Recorder


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    service = Recorder()
    yield service
    service.stop()


def test_request_is_a_client_span_whose_context_the_callee_receives(recorder, captured_spans):
    assert integration.installed
    with get_tracer().start_as_current_span("task"):
        assert requests.post(recorder.url, json={"order": 1}, timeout=5).status_code == 204
    spans = captured_spans.records()
    assert_trace(spans, Expect("task", children=[Expect("POST", kind="CLIENT", error=False)]))
    client = next(s for s in spans if s.kind == "CLIENT")
    assert recorder.headers[0]["traceparent"].split("-")[1:3] == [client.trace_id, client.span_id]


def test_uninstall_restores_plain_requests_and_install_again_traces(recorder, captured_spans):
    integration.uninstall()
    try:
        requests.post(recorder.url, timeout=5)
    finally:
        integration.install(None)
    requests.post(recorder.url, timeout=5)
    assert "traceparent" not in recorder.headers[0]
    assert "traceparent" in recorder.headers[1]
    assert [s.kind for s in captured_spans.records()] == ["CLIENT"]


def test_no_traceparent_to_a_host_outside_propagate_to(recorder, captured_spans):
    with override_settings(TRACING={**settings.TRACING, "PROPAGATE_TO": ["pricing.internal"]}):
        requests.post(recorder.url, timeout=5)
    assert "traceparent" not in recorder.headers[0] and "baggage" not in recorder.headers[0]
    assert [s.kind for s in captured_spans.records()] == ["CLIENT"], "still traced"
