"""Trace headers in every AMQP field type a publisher in another language sends:
text, byte arrays, a list of lines. Read by the kombu carrier and by
Celery's task-request getter; other types are not read, and no message quotes a value.
Real RabbitMQ with pika as the publisher: tests/e2e/test_header_types_rabbitmq.py."""

from __future__ import annotations

import datetime
import decimal
import logging
from types import SimpleNamespace

import pytest
from celery import Celery

from tracing_app.context.carriers import CARRIER, MAX_HEADER_CHARS, extract
from tracing_app.integrations.celery.headers import REQUEST_GETTER
from tracing_app.integrations.kombu import consuming

TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{PARENT_ID}-01"

app = Celery("header-types", broker="memory://", set_as_current=False)


@app.task(name="header_types.noop")
def noop():
    return None


AS_SENT = {  # how each client hands the same traceparent to kombu
    "str (AMQP long string)": VALID,
    "bytes (byte array: Java byte[], .NET byte[], Go []byte, pika bytes)": VALID.encode(),
    "bytearray": bytearray(VALID.encode()),
    "memoryview (py-amqp slices a frame)": memoryview(VALID.encode()),
    "list of one str (field array)": [VALID],
    "tuple of one bytes": (VALID.encode(),),
}


@pytest.mark.parametrize("value", AS_SENT.values(), ids=AS_SENT.keys())
def test_carrier_reads_every_text_field_type(value):
    assert CARRIER.get({"traceparent": value}, "traceparent") == [VALID]
    assert extract({"traceparent": value})[1] == ""


@pytest.mark.parametrize("value", AS_SENT.values(), ids=AS_SENT.keys())
def test_consumer_continues_the_trace_whatever_the_field_type(captured_spans, caplog, value):
    headers = {"traceparent": value, "tracestate": b"vendor=opaque", "baggage": bytearray(b"tenant=acme")}
    message = SimpleNamespace(headers=headers, body=b"{}", properties={}, delivery_info={"routing_key": "order.paid"})
    with caplog.at_level(logging.WARNING), consuming(message):
        pass
    [span] = captured_spans.records()
    assert (span.trace_id, span.parent_id) == (TRACE_ID, PARENT_ID)
    assert caplog.records == [], "no warning for a usable header"


@pytest.mark.parametrize("value", AS_SENT.values(), ids=AS_SENT.keys())
def test_celery_task_continues_the_trace_whatever_the_field_type(captured_spans, value):
    noop.apply(headers={"traceparent": value})
    [span] = captured_spans.records()
    assert (span.trace_id, span.parent_id) == (TRACE_ID, PARENT_ID)


SAME_AS_HTTP = {  # traceparent -> continued? W3C Trace Context Level 2, "Versioning of traceparent"
    "a later version with fields after the flags": (f"cc-{TRACE_ID}-{PARENT_ID}-01-later-fields", True),
    "a later version of the same length": (f"cc-{TRACE_ID}-{PARENT_ID}-01", True),
    "OWS around the value": (f" {VALID}\t", True),
    "version 00 with fields after the flags": (f"{VALID}-x", False),
    "uppercase hex": (f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", False),
    "version ff": (f"ff-{TRACE_ID}-{PARENT_ID}-01", False),
    "a later version whose flags are not followed by a dash": (f"cc-{TRACE_ID}-{PARENT_ID}-01x", False),
}


@pytest.mark.parametrize("traceparent, continued", SAME_AS_HTTP.values(), ids=SAME_AS_HTTP.keys())
def test_message_traceparent_is_read_as_an_http_request_reads_it(captured_spans, traceparent, continued):
    """By a raw kombu consumer and by a Celery task, in each field type."""
    from opentelemetry import propagate, trace

    http = trace.get_current_span(propagate.extract({"traceparent": traceparent})).get_span_context()
    assert http.is_valid is continued, "the HTTP reading this test compares with"
    for value in (traceparent, traceparent.encode(), [traceparent]):
        assert (extract({"traceparent": value})[1] == "") is continued
        message = SimpleNamespace(headers={"traceparent": value}, body=b"{}", properties={},
                                  delivery_info={"routing_key": "order.paid"})
        with consuming(message):
            pass
        noop.apply(headers={"traceparent": value})
        for span in captured_spans.records()[-2:]:  # the consumer's, the Celery task's
            assert (span.trace_id == TRACE_ID and span.parent_id == PARENT_ID) is continued


def test_request_getter_reads_bytes_on_the_request_and_nested_under_headers():
    assert REQUEST_GETTER.get(SimpleNamespace(traceparent=VALID.encode()), "traceparent") == [VALID]
    assert REQUEST_GETTER.get(SimpleNamespace(headers={"traceparent": bytearray(VALID.encode())}),
                              "traceparent") == [VALID]
    assert REQUEST_GETTER.get(SimpleNamespace(traceparent=7), "traceparent") is None


def test_tracestate_lines_in_a_list_are_combined():
    headers = {"traceparent": VALID.encode(), "tracestate": [b"a=1", "b=2"]}
    assert CARRIER.get(headers, "tracestate") == ["a=1", "b=2"]
    from opentelemetry import propagate, trace

    state = trace.get_current_span(propagate.extract(headers, getter=CARRIER)).get_span_context().trace_state
    assert dict(state) == {"a": "1", "b": "2"}


SECRET = "hunter2-customer-42"
NOT_TRACE_CONTEXT = {  # value -> what the reason says
    "int": (12, "is a int, not text"),
    "decimal": (decimal.Decimal("1.5"), "is a Decimal, not text"),
    "timestamp": (datetime.datetime(2026, 1, 1), "is a datetime, not text"),
    "table": ({"traceparent": VALID}, "is a dict, not text"),
    "bool": (True, "is a bool, not text"),
    "bytes not UTF-8": (b"\xff\xfe" + SECRET.encode(), "is a bytes that is not UTF-8 text"),
    "empty list": ([], "is a list of 0 values"),
    "nested list": ([[VALID]], "is a list holding lists"),
    "list with an int": ([VALID, 5], "holds a value that is a int, not text"),
    "two traceparents": ([VALID, VALID.encode()], "traceparent has 2 values"),
    "too long bytes": (b"0" * (MAX_HEADER_CHARS + 1), "characters long"),
    "malformed bytes": (f"00-{SECRET}-01".encode(), "traceparent is malformed"),
    "zero trace id bytes": (f"00-{'0' * 32}-{PARENT_ID}-01".encode(), "has an all-zero id"),
}


@pytest.mark.parametrize("value, reason", NOT_TRACE_CONTEXT.values(), ids=NOT_TRACE_CONTEXT.keys())
def test_other_types_are_not_read_and_the_reason_never_quotes_the_value(captured_spans, caplog, value, reason):
    problem = extract({"traceparent": value})[1]
    assert reason in problem
    message = SimpleNamespace(headers={"traceparent": value}, body=b"{}", properties={"message_id": "m-9"},
                              delivery_info={"routing_key": "order.paid"})
    with caplog.at_level(logging.DEBUG), consuming(message):
        pass
    [span] = captured_spans.records()
    assert span.parent_id == "", "a new trace"
    [record] = [r for r in caplog.records if "no usable trace context" in r.getMessage()]
    assert reason in record.getMessage()
    for logged in [r.getMessage() for r in caplog.records]:
        assert SECRET not in logged and TRACE_ID not in logged and "0000000000" not in logged
