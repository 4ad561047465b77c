"""Log records carry the current trace; formatters print it."""

import json
import logging

import pytest

from tests.tracing_settings import tracing_settings
from tracing_app import get_tracer
from tracing_app.integrations.logs import JsonFormatter, TextFormatter

logger = logging.getLogger("tests.logs")


def make_record(message="hello", level=logging.INFO):
    return logger.makeRecord(logger.name, level, __file__, 1, message, (), None)


def test_records_inside_a_span_carry_its_ids():
    with tracing_settings() as spans:
        with get_tracer().start_as_current_span("work") as span:
            record = make_record()
            span_context = span.get_span_context()
    assert record.trace_id == f"{span_context.trace_id:032x}" == spans.records()[0].trace_id
    assert record.span_id == f"{span_context.span_id:016x}"
    assert int(record.trace_flags, 16) & 1 == 1  # sampled (the SDK also sets W3C level 2 "random")
    assert record.service_name == "shop-web"


def test_outside_a_span_fields_are_empty_never_zero():
    record = make_record()
    assert (record.trace_id, record.span_id, record.trace_flags) == ("", "", "")
    assert record.service_name == "shop-web"
    text = TextFormatter().format(record)
    assert "trace_id= span_id=]" in text and "0000" not in text


def test_text_and_json_formatters():
    with tracing_settings():
        with get_tracer().start_as_current_span("work") as span:
            record = make_record("order %s created")
            record.args = (7,)
            trace_id = f"{span.get_span_context().trace_id:032x}"
    text = TextFormatter().format(record)
    assert f"trace_id={trace_id}" in text and "order 7 created" in text and "[shop-web" in text
    line = json.loads(JsonFormatter().format(record))
    assert line["trace_id"] == trace_id and line["message"] == "order 7 created"
    assert line["service.name"] == "shop-web" and line["level"] == "INFO" and len(line["span_id"]) == 16


def test_formatters_accept_records_made_without_the_factory():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain", (), None)
    assert json.loads(JsonFormatter().format(record))["trace_id"] == ""
    assert "plain" in TextFormatter("%(trace_id)s|%(message)s").format(record)


@pytest.mark.parametrize("enabled", [True, False])
def test_error_logs_as_span_events(enabled):
    with tracing_settings(LOG_ERRORS_AS_EVENTS=enabled) as spans:
        with get_tracer().start_as_current_span("work"):
            logger.error("payment failed for order %s", 7)
            logger.info("not an event")
    events = spans.records()[0].events
    if enabled:
        assert events == (("log", {"log.severity": "ERROR", "log.logger": "tests.logs",
                                   "log.message": "payment failed for order 7"}),)
    else:
        assert events == ()


def test_uninstall_restores_the_factory():
    from tracing_app.integrations.logs import integration

    with tracing_settings(INTEGRATIONS={"logging": False}):
        assert not integration.installed
        assert not hasattr(make_record(), "trace_id")
    assert integration.installed and hasattr(make_record(), "trace_id")


@pytest.mark.urls("tests.business_urls")
def test_log_lines_in_an_untraced_health_check_have_empty_ids(client, caplog):
    with tracing_settings() as spans, caplog.at_level(logging.INFO, logger="tests.business"):
        client.get("/healthz")
        client.get("/api/whoami/")
    health, traced = (record for record in caplog.records if record.getMessage() == "whoami")
    assert (health.trace_id, health.span_id) == ("", "")
    assert traced.trace_id == next(s.trace_id for s in spans.records() if s.kind == "SERVER")
