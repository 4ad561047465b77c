"""KombuHeadersCarrier, header validation, and publish()/consuming() with stand-in kombu objects."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from opentelemetry import baggage, context

from tracing_app import get_tracer
from tracing_app.context.carriers import CARRIER, MAX_HEADER_CHARS, extract
from tracing_app.context.suppression import untraced
from tracing_app.integrations.kombu import consuming, publish
from tracing_app.testing import Expect, assert_trace

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class RecordingProducer:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[dict] = []
        self.fail = fail

    def publish(self, body, **kwargs):
        if self.fail:
            raise ConnectionError("broker gone")
        self.published.append({"body": body, **kwargs})


def test_carrier_reads_text_only_and_writes_headers():
    headers = {"traceparent": VALID, "number": 5, "long": "x" * (MAX_HEADER_CHARS + 1), 7: "key not a str"}
    assert CARRIER.get(headers, "traceparent") == [VALID]
    assert CARRIER.get(headers, "number") is None
    assert CARRIER.get(headers, "long") is None
    assert CARRIER.get(headers, "absent") is None
    assert CARRIER.get(None, "traceparent") is None
    assert CARRIER.keys(headers) == ["traceparent", "number", "long"]
    CARRIER.set(headers, "tracestate", "a=b")
    assert headers["tracestate"] == "a=b"


@pytest.mark.parametrize("headers, problem", [
    (None, "no traceparent"),
    ({}, "no traceparent"),
    ({"traceparent": 12}, "is a int, not text"),
    ({"traceparent": ["x"]}, "traceparent is malformed"),
    ({"traceparent": VALID, "tracestate": "k=" + "v" * MAX_HEADER_CHARS}, "characters long"),
    ({"traceparent": "00-abc-01"}, "is malformed"),
    ({"traceparent": "ff" + VALID[2:]}, "is malformed"),
    ({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}, "has an all-zero id"),
])
def test_header_problems_are_named(headers, problem):
    assert problem in extract(headers)[1]


def test_valid_headers_have_no_problem():
    assert extract({"traceparent": VALID, "tracestate": "a=b", "x-other": 5})[1] == ""


def test_publish_is_a_producer_span_whose_context_is_in_the_headers(captured_spans):
    producer = RecordingProducer()
    user_headers = {"x-tenant": "acme"}
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with get_tracer().start_as_current_span("request"):
            publish(producer, b"{}", exchange="shop.events", routing_key="order.created", headers=user_headers,
                    message_id="m-1")
    finally:
        context.detach(token)
    assert user_headers == {"x-tenant": "acme"}, "the caller's headers are copied, not changed"
    [sent] = producer.published
    assert sent["headers"]["x-tenant"] == "acme" and sent["message_id"] == "m-1"
    assert sent["headers"]["baggage"] == "tenant=acme"
    spans = captured_spans.records()
    send = next(s for s in spans if s.name == "send order.created")
    assert sent["headers"]["traceparent"].startswith(f"00-{send.trace_id}-{send.span_id}-")
    assert_trace(spans, Expect("request", children=[Expect("send order.created", kind="PRODUCER", attributes={
        "messaging.system": "rabbitmq", "messaging.operation.type": "send",
        "messaging.destination.name": "shop.events", "messaging.rabbitmq.destination.routing_key": "order.created",
        "messaging.message.id": "m-1", "messaging.message.body.size": 2,
    })]))


def test_failed_publish_is_an_error_span_and_raises(captured_spans):
    with pytest.raises(ConnectionError):
        publish(RecordingProducer(fail=True), b"{}", exchange="x", routing_key="order.created")
    [span] = captured_spans.records()
    assert span.error and span.attributes["error.type"] == "ConnectionError"


def message(headers) -> SimpleNamespace:
    return SimpleNamespace(headers=headers, body=b'{"a": 1}', properties={"message_id": "m-2"},
                           delivery_info={"exchange": "shop.events", "routing_key": "order.created"})


def test_consuming_continues_the_publisher_trace(captured_spans):
    producer = RecordingProducer()
    with get_tracer().start_as_current_span("request"):
        publish(producer, b"{}", exchange="shop.events", routing_key="order.created")
    with consuming(message(producer.published[0]["headers"])):
        with get_tracer().start_as_current_span("handle"):
            pass
    assert_trace(captured_spans.records(), Expect("request", children=[
        Expect("send order.created", kind="PRODUCER", children=[
            Expect("process order.created", kind="CONSUMER", attributes={
                "messaging.message.id": "m-2", "messaging.message.body.size": 8}, children=[Expect("handle")]),
        ]),
    ]))


def test_consuming_without_usable_headers_starts_a_new_trace_and_warns_once(captured_spans, caplog):
    with caplog.at_level(logging.WARNING, logger="tracing_app.integrations.kombu"):
        with get_tracer().start_as_current_span("unrelated current span"):
            with consuming(message({"traceparent": 42})):
                pass
    process = next(s for s in captured_spans.records() if s.kind == "CONSUMER")
    assert process.parent_id == ""
    [record] = caplog.records
    assert "m-2" in record.getMessage() and "is a int, not text" in record.getMessage()


def test_consuming_marks_a_failed_handler_and_reraises(captured_spans):
    with pytest.raises(KeyError), consuming(message({"traceparent": VALID})):
        raise KeyError("order_id")
    [span] = captured_spans.records()
    assert span.error and span.parent_id == "00f067aa0ba902b7"


def test_publish_inside_untraced_makes_no_span_and_sends_no_context(captured_spans):
    """untraced() (UNTRACED_COMMANDS, our own bookkeeping) silences publishes as it does queries."""
    producer = RecordingProducer()
    with get_tracer().start_as_current_span("housekeeping"), untraced():
        publish(producer, b"{}", exchange="shop.events", routing_key="order.created", headers={"x-tenant": "acme"})
        publish(producer, "{}", routing_key="jobs")
    assert [sent["headers"] for sent in producer.published] == [{"x-tenant": "acme"}, {}]
    assert [s.name for s in captured_spans.records()] == ["housekeeping"]
