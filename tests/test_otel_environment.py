"""The OpenTelemetry SDK environment specification, one test (or one parametrized test)
per row of docs/otel-environment.md: parsing, precedence (signal-specific over generic,
OTEL_* over TRACING), units, empty = unset, invalid = warning (tracing_app.W004) and
treated as unset. Export-side rows are proved at a real OTLP receiver."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.checks import WARNING
from django.test import override_settings
from opentelemetry import propagate

from tests.e2e.stack import Recorder
from tracing_app import checks
from tracing_app.conf import resolve
from tracing_app.conf.config import ENV_IGNORED
from tracing_app.conf.parsers import NO_LIMIT_MILLIS
from tracing_app.devtools.receiver import OTLPGrpcReceiver, OTLPReceiver
from tracing_app.pipeline import provider, resource
from tracing_app.testing import capture_spans

ROOT = Path(__file__).resolve().parents[1]
INCOMING = "00-12345678901234567890123456789012-1234567890123456-01"


def problems(config):
    return [(p.check_id, p.key) for p in config.problems]


def ignored(config, key):
    """The variable for ``key`` was reported as ignored (W004, a warning)."""
    return (ENV_IGNORED, key) in problems(config)


# -- general SDK configuration ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "TRUE", "True", " true "])
def test_sdk_disabled_true_in_any_case_disables(value):
    config = resolve({"ENABLED": True}, {"OTEL_SDK_DISABLED": value})
    assert config.enabled is False and problems(config) == []


@pytest.mark.parametrize(("value", "warns"), [("false", False), ("FALSE", False), ("1", True), ("yes", True),
                                              ("on", True), ("", False)])
def test_sdk_disabled_anything_else_has_no_effect(value, warns):
    """Only "true" is true (no "1", "yes"); any other value leaves TRACING's ENABLED alone."""
    for enabled in (True, False):
        config = resolve({"ENABLED": enabled}, {"OTEL_SDK_DISABLED": value})
        assert config.enabled is enabled and config.sources["ENABLED"] == "TRACING"
        assert ignored(config, "ENABLED") is warns


def test_resource_attributes_are_percent_decoded_and_merged_under_tracing():
    config = resolve({"RESOURCE_ATTRIBUTES": {"team": "from-settings"}},
                     {"OTEL_RESOURCE_ATTRIBUTES": "team=env, region=eu%2Cwest ,note=a%3Db%20c,caf%C3%A9=%E2%9C%93"})
    assert config.resource_attributes == {"team": "from-settings", "region": "eu,west", "note": "a=b c",
                                          "café": "✓"}
    built = resource.build_resource(config, "web")
    assert built.attributes["region"] == "eu,west" and built.attributes["team"] == "from-settings"


@pytest.mark.parametrize("value", ["team=a,region", "=x", "team=100%", "team=%zz", "team=%C3%28"])
def test_resource_attributes_that_cannot_be_decoded_are_discarded_whole(value):
    config = resolve({"RESOURCE_ATTRIBUTES": {"team": "kept"}}, {"OTEL_RESOURCE_ATTRIBUTES": value})
    assert config.resource_attributes == {"team": "kept"}
    assert ignored(config, "RESOURCE_ATTRIBUTES")


def test_service_name_wins_over_service_name_in_resource_attributes():
    config = resolve({"SERVICE_NAME": "shop"}, {"OTEL_SERVICE_NAME": "billing",
                                                "OTEL_RESOURCE_ATTRIBUTES": "service.name=other%2Dname"})
    assert resource.service_name(config, "web") == "billing"
    only_attributes = resolve({"SERVICE_NAME": "shop"}, {"OTEL_RESOURCE_ATTRIBUTES": "service.name=other%2Dname"})
    assert resource.service_name(only_attributes, "web") == "other-name"


@pytest.mark.parametrize(("variable", "row"), [
    ("OTEL_ENTITIES", "OTEL_ENTITIES"), ("OTEL_LOG_LEVEL", "OTEL_LOG_LEVEL"), ("OTEL_CONFIG_FILE", "OTEL_CONFIG_FILE"),
    ("OTEL_EXPORTER_OTLP_SPAN_INSECURE", "OTEL_EXPORTER_OTLP_SPAN_INSECURE"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "OTEL_BLRP_*"),
    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_*"),
    ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "OTEL_EXPORTER_ZIPKIN_*"),
    ("OTEL_EXPORTER_PROMETHEUS_PORT", "OTEL_EXPORTER_PROMETHEUS_*"),
    ("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "OTEL_LOGRECORD_*"),
])
def test_variables_listed_as_not_supported_change_nothing(variable, row):
    assert resolve({}, {variable: "debug"}) == resolve({}, {})
    assert f"`{row}`" in (ROOT / "docs" / "otel-environment.md").read_text()


# -- propagators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "value"), [
    ("env", "none"), ("env", "NONE"), ("env", "tracecontext,none"), ("settings", ["none"]), ("settings", "none"),
])
def test_propagators_none_is_valid(source, value):
    config = resolve({"PROPAGATORS": value}, {}) if source == "settings" else resolve({}, {"OTEL_PROPAGATORS": value})
    assert config.propagators == () and problems(config) == []


def test_propagators_are_case_insensitive_and_deduplicated():
    config = resolve({}, {"OTEL_PROPAGATORS": "TraceContext, baggage,tracecontext"})
    assert config.propagators == ("tracecontext", "baggage")
    assert resolve({"PROPAGATORS": ["baggage", "baggage"]}, {}).propagators == ("baggage",)


def test_an_unknown_propagator_in_the_variable_is_a_warning_and_the_variable_is_ignored():
    config = resolve({"PROPAGATORS": ["tracecontext"]}, {"OTEL_PROPAGATORS": "tracecontext,b3-typo"})
    assert config.propagators == ("tracecontext",) and config.sources["PROPAGATORS"] == "TRACING"
    assert ignored(config, "PROPAGATORS")


@pytest.mark.parametrize("tracing", [{"PROPAGATORS": ["none"]}, {}])
def test_propagators_none_passes_the_checks(tracing, monkeypatch):
    if not tracing:
        monkeypatch.setenv("OTEL_PROPAGATORS", "none")
    with override_settings(TRACING=tracing):
        assert [m.id for m in checks.check_settings() if m.id.startswith("tracing_app.")] == []


@pytest.mark.urls("tests.urls")
def test_with_propagators_none_nothing_is_extracted_or_injected(client):
    """A request carrying a traceparent starts its own trace; its outgoing call carries no context."""
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(provider.build_propagator(resolve({"PROPAGATORS": ["none"]}, {})))
    recorder = Recorder()
    try:
        with capture_spans() as spans:
            response = client.post("/call-out/", json.dumps([recorder.url]), content_type="application/json",
                                   HTTP_TRACEPARENT=INCOMING, HTTP_TRACESTATE="foo=1", HTTP_BAGGAGE="tenant.id=t1")
        assert response.status_code == 204
    finally:
        propagate.set_global_textmap(previous)
        recorder.stop()
    [sent] = recorder.headers
    assert not {"traceparent", "tracestate", "baggage"} & set(sent)
    server = next(s for s in spans.records() if s.kind == "SERVER")
    assert server.trace_id != INCOMING.split("-")[1] and not server.parent_id


def manage(*args, **environ):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DJANGO_", "PYTEST_"))}
    env.update(environ, DJANGO_SETTINGS_MODULE="project.settings", TRACING_EMBEDDED="1")
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("value", ["none", "NONE", "tracecontext,baggage,none"])
def test_manage_py_runs_with_propagators_none(value):
    done = manage("check", OTEL_PROPAGATORS=value)
    assert done.returncode == 0 and "tracing_app" not in done.stderr + done.stdout, done.stderr


@pytest.mark.parametrize("value", ["nonsense", "TraceContext,Baggage"])
def test_a_propagator_name_the_api_refuses_does_not_stop_the_process(value):
    """The OpenTelemetry API raises at import for a name it cannot load; the host still starts."""
    done = manage("check", OTEL_PROPAGATORS=value)
    assert done.returncode == 0, done.stderr
    assert ("tracing_app.W004" in done.stderr) is (value == "nonsense")


def test_the_system_checks_run_in_a_real_process():
    """Without this, the tests above would pass with no check registered at all."""
    done = manage("check", OTEL_EXPORTER_OTLP_ENDPOINT="127.0.0.1:4318")
    assert done.returncode == 1 and "tracing_app.E008" in done.stderr, done.stderr


# -- sampler -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("ALWAYS_OFF", "always_off"),
                                                 ("ParentBased_TraceIdRatio", "parentbased_traceidratio")])
def test_sampler_is_case_insensitive(value, expected):
    assert resolve({}, {"OTEL_TRACES_SAMPLER": value}).sampler == expected


@pytest.mark.parametrize("value", ["jaeger_remote", "parentbased_jaeger_remote", "xray", "sometimes"])
def test_a_sampler_we_do_not_have_is_a_warning_and_ignored(value):
    config = resolve({"SAMPLER": "always_on"}, {"OTEL_TRACES_SAMPLER": value})
    assert config.sampler == "always_on" and ignored(config, "SAMPLER")


@pytest.mark.parametrize("value", ["lots", "1.5", "-0.1", "nan"])
def test_an_invalid_sampler_arg_behaves_as_if_unset(value):
    config = resolve({"SAMPLE_RATIO": 0.25}, {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": value})
    assert config.sample_ratio == 0.25 and ignored(config, "SAMPLE_RATIO")


def test_sampler_arg_for_a_sampler_without_argument_is_a_warning():
    config = resolve({}, {"OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "0.5"})
    assert ignored(config, "SAMPLE_RATIO")
    assert problems(resolve({}, {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"})) == []


# -- batch span processor ----------------------------------------------------------------------------


@pytest.mark.parametrize(("variable", "key", "value", "expected"), [
    ("OTEL_BSP_SCHEDULE_DELAY", "BATCH_SCHEDULE_DELAY", "250", 0.25),
    ("OTEL_BSP_EXPORT_TIMEOUT", "BATCH_EXPORT_TIMEOUT", "1500", 1.5),
    ("OTEL_BSP_EXPORT_TIMEOUT", "BATCH_EXPORT_TIMEOUT", "0", NO_LIMIT_MILLIS / 1000),  # Timeout 0: no limit
    ("OTEL_BSP_MAX_QUEUE_SIZE", "BATCH_MAX_QUEUE_SIZE", "4096", 4096),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "BATCH_MAX_EXPORT_SIZE", "100", 100),
])
def test_batch_variables_in_their_units(variable, key, value, expected):
    config = resolve({}, {variable: value})
    assert config.values[key] == expected and problems(config) == []


@pytest.mark.parametrize(("variable", "key"), [
    ("OTEL_BSP_SCHEDULE_DELAY", "BATCH_SCHEDULE_DELAY"), ("OTEL_BSP_EXPORT_TIMEOUT", "BATCH_EXPORT_TIMEOUT"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "BATCH_MAX_QUEUE_SIZE"), ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "BATCH_MAX_EXPORT_SIZE"),
])
@pytest.mark.parametrize("value", ["-5", "2.5", "1e3", "ten", str(2**31)])
def test_batch_variables_that_are_not_whole_numbers_in_range_are_ignored(variable, key, value):
    settings_value = {"BATCH_SCHEDULE_DELAY": 2.0, "BATCH_EXPORT_TIMEOUT": 7.0, "BATCH_MAX_QUEUE_SIZE": 1000,
                      "BATCH_MAX_EXPORT_SIZE": 100}[key]
    config = resolve({key: settings_value}, {variable: value})
    assert config.values[key] == settings_value and ignored(config, key)


@pytest.mark.parametrize("variable", ["OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE"])
def test_zero_where_it_has_no_meaning_is_ignored(variable):
    assert ignored(resolve({}, {variable: "0"}), {"OTEL_BSP_SCHEDULE_DELAY": "BATCH_SCHEDULE_DELAY",
                                                  "OTEL_BSP_MAX_QUEUE_SIZE": "BATCH_MAX_QUEUE_SIZE"}[variable])


def test_export_batch_larger_than_the_queue_is_a_warning():
    config = resolve({}, {"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "200"})
    assert (config.batch_max_queue_size, config.batch_max_export_size) == (100, 100)
    assert ignored(config, "BATCH_MAX_EXPORT_SIZE")


@pytest.mark.parametrize(("user", "environ"), [
    ({}, {"OTEL_BSP_MAX_QUEUE_SIZE": "100"}),
    ({"BATCH_MAX_QUEUE_SIZE": 100}, {}),
    ({"BATCH_MAX_QUEUE_SIZE": 1000}, {"OTEL_BSP_MAX_QUEUE_SIZE": "64"}),
])
def test_queue_smaller_than_the_default_batch_makes_the_default_batch_follow_it(user, environ):
    """Only the queue is set: a valid choice, and the default batch (512) cannot exceed it."""
    config = resolve(user, environ)
    assert config.batch_max_export_size == config.batch_max_queue_size < 512
    assert problems(config) == []


def test_tracing_batch_larger_than_an_environment_queue_is_a_warning_not_an_error():
    config = resolve({"BATCH_MAX_EXPORT_SIZE": 300}, {"OTEL_BSP_MAX_QUEUE_SIZE": "100"})
    assert config.batch_max_export_size == 100 and ignored(config, "BATCH_MAX_EXPORT_SIZE")
    assert resolve({"BATCH_MAX_EXPORT_SIZE": 300, "BATCH_MAX_QUEUE_SIZE": 100}, {}).problems[0].check_id == \
        "tracing_app.E003", "TRACING contradicting itself stays an error"


# -- attribute and span limits -------------------------------------------------------------------


@pytest.mark.parametrize(("environ", "limits"), [
    ({}, {"max_span_attributes": 128, "max_events": 128, "max_links": 128, "max_event_attributes": 128,
          "max_link_attributes": 128, "max_attribute_length": None, "max_span_attribute_length": None}),
    ({"OTEL_ATTRIBUTE_COUNT_LIMIT": "5"}, {"max_span_attributes": 5, "max_event_attributes": 5,
                                           "max_link_attributes": 5}),
    ({"OTEL_ATTRIBUTE_COUNT_LIMIT": "5", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "3",
      "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "0"},
     {"max_span_attributes": 3, "max_event_attributes": 0, "max_link_attributes": 5}),
    ({"OTEL_SPAN_EVENT_COUNT_LIMIT": "7", "OTEL_SPAN_LINK_COUNT_LIMIT": "0", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": "2"},
     {"max_events": 7, "max_links": 0, "max_link_attributes": 2}),
    ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10"}, {"max_attribute_length": 10, "max_span_attribute_length": 10}),
    ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4"},
     {"max_attribute_length": 10, "max_span_attribute_length": 4}),
])
def test_limit_variables(environ, limits):
    built = provider.build_span_limits(resolve({}, environ))
    assert {name: getattr(built, name) for name in limits} == limits


@pytest.mark.parametrize("variable", ["OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
                                      "OTEL_SPAN_EVENT_COUNT_LIMIT", "OTEL_SPAN_LINK_COUNT_LIMIT",
                                      "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
                                      "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"])
@pytest.mark.parametrize("value", ["abc", "-3", "1.5", " "])
def test_a_bad_limit_variable_is_a_warning_and_tracing_keeps_working(variable, value, monkeypatch):
    """The SDK's SpanLimits raises for these values (even for an empty one, which is unset), which
    left the process without a tracer provider."""
    monkeypatch.setenv(variable, value)  # the SDK reads os.environ itself when a limit is not given
    config = resolve({}, {variable: value})
    assert ignored(config, config.problems[0].key) if value.strip() else problems(config) == []
    tracer_provider = provider.build_provider(config, None)
    assert tracer_provider.get_tracer("t").start_span("ok").is_recording()


def test_limits_apply_to_exported_spans():
    with OTLPReceiver() as receiver:
        config = resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "2",
                              "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4", "OTEL_SPAN_EVENT_COUNT_LIMIT": "1"})
        processor = provider.build_processor(config)
        tracer_provider = provider.build_provider(config, processor)
        span = tracer_provider.get_tracer("t").start_span("limited", attributes={"a": "1", "b": "x", "c": "abcdefgh"})
        span.add_event("first")
        span.add_event("second")
        span.end()
        assert processor.force_flush()
        processor.shutdown()
    [exported] = receiver.spans
    # Over the count, the SDK keeps the newest attributes.
    assert dict(exported.attributes) == {"b": "x", "c": "abcd"} and len(exported.events) == 1


# -- exporter selection and OTLP exporter options -----------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("OTLP", "otlp"), ("Console", "console"), ("none", "none")])
def test_traces_exporter(value, expected):
    assert resolve({}, {"OTEL_TRACES_EXPORTER": value}).exporter == expected


@pytest.mark.parametrize("value", ["zipkin", "logging", "otlp/stdout", "otlp,console", "jaeger"])
def test_an_exporter_we_do_not_have_is_a_warning_and_ignored(value):
    config = resolve({"EXPORTER": "console"}, {"OTEL_TRACES_EXPORTER": value})
    assert config.exporter == "console" and ignored(config, "EXPORTER")


@pytest.mark.parametrize(("key", "generic", "specific", "values", "expected"), [
    ("OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
     ("http/protobuf", "GRPC"), "grpc"),
    ("OTLP_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
     ("a=1,b=2", "c=3"), {"c": "3"}),
    ("OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", ("5000", "2500"), 2.5),
    ("OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
     ("none", "GZIP"), "gzip"),
    ("OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
     ("/generic.pem", "/traces.pem"), "/traces.pem"),
    ("OTLP_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
     ("/generic.key", "/traces.key"), "/traces.key"),
    ("OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
     "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", ("/generic.crt", "/traces.crt"), "/traces.crt"),
    ("OTLP_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE", ("false", "TRUE"), True),
])
def test_signal_specific_wins_and_an_invalid_one_falls_back_to_the_generic(key, generic, specific, values, expected):
    config = resolve({}, {generic: values[0], specific: values[1]})
    assert config.values[key] == expected and config.sources[key] == f"env:{specific}"
    generic_only = resolve({}, {generic: values[0], specific: "  "})  # empty is unset
    assert generic_only.sources[key] == f"env:{generic}"


@pytest.mark.parametrize(("key", "specific", "generic", "bad", "good", "expected"), [
    ("OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT", "2.5s", "3000", 3.0),
    ("OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "grpc",
     "grpc"),
    ("OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "gzip",
     "gzip"),
    ("OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS", "token", "a=b", {"a": "b"}),
])
def test_an_invalid_signal_specific_variable_is_unset_so_the_generic_applies(key, specific, generic, bad, good,
                                                                            expected):
    config = resolve({}, {specific: bad, generic: good})
    assert config.values[key] == expected and ignored(config, key)


def test_otlp_timeout_zero_is_no_limit_and_units_are_milliseconds():
    assert resolve({}, {"OTEL_EXPORTER_OTLP_TIMEOUT": "0"}).otlp_timeout == NO_LIMIT_MILLIS / 1000
    assert resolve({}, {"OTEL_EXPORTER_OTLP_TIMEOUT": "250"}).otlp_timeout == 0.25


def test_insecure_that_is_not_a_boolean_reads_as_false_with_a_warning():
    config = resolve({"OTLP_INSECURE": True}, {"OTEL_EXPORTER_OTLP_INSECURE": "yes"})
    assert config.otlp_insecure is False and ignored(config, "OTLP_INSECURE")


@pytest.mark.parametrize(("environ", "endpoint"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http://c:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/base/"}, "http://c:4318/base/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/base"}, "http://c:4318/base/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/v1/traces"}, "http://c:4318/v1/traces"),  # documented leniency
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318"}, "http://c:4318"),  # as given (no path: "/")
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": " ", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:4318"},
     "http://g:4318/v1/traces"),  # empty is unset
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:4318"},
     "http://c:4318/custom"),
])
def test_endpoint_variables(environ, endpoint):
    assert resolve({}, environ).traces_endpoint == endpoint


def test_a_signal_endpoint_without_a_path_is_sent_to_the_root_path():
    with OTLPReceiver() as receiver:
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint}), sent=False)
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint + "/v1/traces"}))
    assert receiver.paths == ["/", "/v1/traces"]  # used as given; the receiver answers 404 on "/"


def test_a_grpc_endpoint_without_a_scheme_is_no_check_error(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "otel-collector:4317")
    with override_settings(TRACING={}):
        assert [m.id for m in checks.check_otlp_endpoint()] == []


# -- the OTLP exporter, proved at a real receiver -------------------------------------------------


def export_one_span(config, name="exported", sent=True):
    """End one span on a provider built from ``config`` and flush it; ``sent``: whether that succeeds."""
    processor = provider.build_processor(config)
    tracer_provider = provider.build_provider(config, processor)
    try:
        tracer_provider.get_tracer("test").start_span(name).end()
        assert processor.force_flush() is sent
    finally:
        processor.shutdown()


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Basic%20QUJD", {"authorization": "Basic QUJD"}),
    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-api-key=a%2Cb%3Dc,x-team = shop ", {"x-api-key": "a,b=c",
                                                                                 "x-team": "shop"}),
    ("OTEL_EXPORTER_OTLP_HEADERS", "x-note=caf%C3%A9", {"x-note": "café"}),
])
def test_headers_arrive_percent_decoded_over_http(variable, value, expected):
    with OTLPReceiver() as receiver:
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, variable: value}))
    [sent] = receiver.headers
    assert {k: sent[k] for k in expected} == expected
    assert [s.name for s in receiver.spans] == ["exported"]


def test_headers_arrive_percent_decoded_over_grpc():
    spans = []
    receiver = OTLPGrpcReceiver("127.0.0.1", 0, spans.extend).start()
    try:
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT":
                                     receiver.endpoint, "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic%20QUJD"}))
    finally:
        receiver.stop()
    assert receiver.headers[0]["authorization"] == "Basic QUJD" and [s.name for s in spans] == ["exported"]


def test_resource_attributes_arrive_decoded():
    with OTLPReceiver() as receiver:
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                     "OTEL_RESOURCE_ATTRIBUTES": "region=eu%2Cwest"}))
    assert receiver.spans[0].resource["region"] == "eu,west"


def test_gzip_compression_over_http():
    with OTLPReceiver() as receiver:
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                     "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}))
    assert receiver.headers[0]["content-encoding"] == "gzip"
    # The receiver gunzips a body sent as gzip (a plain one would not decode): the span arriving proves it.
    assert [s.name for s in receiver.spans] == ["exported"]


class CountingProxy:
    """A TCP forwarder on loopback that counts the bytes a client sends through it."""

    def __init__(self, target_port):
        self.sent = 0
        self._target = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source, destination, count):
        try:
            while data := source.recv(65536):
                if count:
                    self.sent += len(data)
                destination.sendall(data)
        except OSError:
            pass
        finally:
            destination.close()

    def stop(self):
        self._server.close()


def grpc_bytes_sent(compression):
    """Bytes on the wire to export one span with a 200 kB attribute over gRPC."""
    spans = []
    receiver = OTLPGrpcReceiver("127.0.0.1", 0, spans.extend).start()
    proxy = CountingProxy(receiver.port)
    try:
        config = resolve({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_COMPRESSION": compression,
                              "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{proxy.port}"})
        processor = provider.build_processor(config)
        tracer_provider = provider.build_provider(config, processor)
        tracer_provider.get_tracer("test").start_span("big", attributes={"payload": "ab" * 100_000}).end()
        assert processor.force_flush()
        processor.shutdown()
    finally:
        proxy.stop()
        receiver.stop()
    assert spans[0].attributes["payload"] == "ab" * 100_000
    return proxy.sent


def test_gzip_compression_over_grpc():
    assert grpc_bytes_sent("gzip") < grpc_bytes_sent("none") / 10


# A test CA, a server certificate (localhost, 127.0.0.1) and a client certificate it signed, valid
# until 2126, made with `openssl req -x509` / `openssl x509 -req` (the CA's key was not kept).
TLS = Path(__file__).parent / "fixtures" / "tls"


def https_receiver(require_client_certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "server.pem", TLS / "server.key")
    if require_client_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(TLS / "ca.pem")
    return OTLPReceiver(tls=context)


@pytest.mark.parametrize(("environ", "sent"), [
    ({"OTEL_EXPORTER_OTLP_CERTIFICATE": str(TLS / "ca.pem")}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": str(TLS / "ca.pem")}, True),
    ({}, False),  # the system's CAs do not know the test CA
])
def test_certificate_option_over_https(environ, sent):
    with https_receiver(require_client_certificate=False) as receiver:
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                     "OTEL_BSP_EXPORT_TIMEOUT": "6000", "OTEL_EXPORTER_OTLP_TIMEOUT": "3000",
                                     **environ}), sent=sent)
    assert [s.name for s in receiver.spans] == (["exported"] if sent else [])


@pytest.mark.parametrize(("client", "sent"), [
    ({"OTEL_EXPORTER_OTLP_CLIENT_KEY": str(TLS / "client.key"),
      "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(TLS / "client.pem")}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": str(TLS / "client.key"),
      "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": str(TLS / "client.pem")}, True),
    ({}, False),  # the server requires a client certificate
])
def test_client_certificate_options_over_https(client, sent):
    with https_receiver(require_client_certificate=True) as receiver:
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                     "OTEL_EXPORTER_OTLP_CERTIFICATE": str(TLS / "ca.pem"),
                                     "OTEL_BSP_EXPORT_TIMEOUT": "6000", "OTEL_EXPORTER_OTLP_TIMEOUT": "3000",
                                     **client}), sent=sent)
    assert [s.name for s in receiver.spans] == (["exported"] if sent else [])


def test_an_unreadable_certificate_file_is_logged_and_tracing_keeps_working(caplog):
    config = resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://127.0.0.1:1",
                          "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"})
    with caplog.at_level("WARNING"):
        processor = provider.build_processor(config)
    processor.shutdown()
    assert "certificate options cannot be loaded" in caplog.text


def grpc_tls_receiver(spans, require_client_certificate):
    import grpc

    credentials = grpc.ssl_server_credentials(
        [((TLS / "server.key").read_bytes(), (TLS / "server.pem").read_bytes())],
        root_certificates=(TLS / "ca.pem").read_bytes() if require_client_certificate else None,
        require_client_auth=require_client_certificate)
    return OTLPGrpcReceiver("127.0.0.1", 0, spans.extend, tls=credentials).start()


@pytest.mark.parametrize(("scheme", "environ", "sent"), [
    ("https://", {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(TLS / "ca.pem")}, True),
    ("", {"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": str(TLS / "ca.pem")}, True),  # no scheme: TLS by default
    ("", {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(TLS / "ca.pem"), "OTEL_EXPORTER_OTLP_INSECURE": "true"}, False),
    ("https://", {}, False),  # the system's CAs do not know the test CA
])
def test_certificate_and_insecure_options_over_grpc(scheme, environ, sent):
    spans = []
    receiver = grpc_tls_receiver(spans, require_client_certificate=False)
    try:
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TIMEOUT": "3000",
                                     "OTEL_BSP_EXPORT_TIMEOUT": "6000",
                                     "OTEL_EXPORTER_OTLP_ENDPOINT": scheme + f"127.0.0.1:{receiver.port}",
                                     **environ}), sent=sent)
    finally:
        receiver.stop()
    assert [s.name for s in spans] == (["exported"] if sent else [])


@pytest.mark.parametrize(("client", "sent"), [
    ({"OTEL_EXPORTER_OTLP_CLIENT_KEY": str(TLS / "client.key"),
      "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(TLS / "client.pem")}, True),
    ({}, False),
])
def test_client_certificate_options_over_grpc(client, sent):
    spans = []
    receiver = grpc_tls_receiver(spans, require_client_certificate=True)
    try:
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TIMEOUT": "3000",
                                     "OTEL_BSP_EXPORT_TIMEOUT": "6000",
                                     "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://127.0.0.1:{receiver.port}",
                                     "OTEL_EXPORTER_OTLP_CERTIFICATE": str(TLS / "ca.pem"), **client}), sent=sent)
    finally:
        receiver.stop()
    assert [s.name for s in spans] == (["exported"] if sent else [])


def test_a_schemeless_grpc_endpoint_is_plain_only_with_insecure():
    spans = []
    receiver = OTLPGrpcReceiver("127.0.0.1", 0, spans.extend).start()
    target = receiver.endpoint.removeprefix("http://")
    try:
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": target,
                                     "OTEL_EXPORTER_OTLP_INSECURE": "true", "OTEL_BSP_EXPORT_TIMEOUT": "20000"}))
        assert [s.name for s in spans] == ["exported"]
        # Without OTLP_INSECURE the same target is spoken to with TLS, which a plain server cannot answer.
        export_one_span(resolve({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": target,
                                     "OTEL_BSP_EXPORT_TIMEOUT": "3000", "OTEL_EXPORTER_OTLP_TIMEOUT": "1000"}),
                        "over-tls", sent=False)
    finally:
        receiver.stop()
    assert [s.name for s in spans] == ["exported"]


def test_check_messages_for_ignored_variables_are_warnings(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "lots")
    with override_settings(TRACING={}):
        [message] = [m for m in checks.check_settings() if m.id == ENV_IGNORED]
    assert message.level == WARNING and "OTEL_BSP_MAX_QUEUE_SIZE" in message.msg


@pytest.mark.parametrize(("user", "environ"), [
    ({"OTLP_HEADERS": "authorization=Bearer s3cr3t-token,broken"}, {}),
    ({"OTLP_HEADERS": {"authorization": b"s3cr3t-token"}}, {}),
    ({"OTLP_HEADERS": ["authorization", "s3cr3t-token"]}, {}),
    ({}, {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20s3cr3t-token,broken"}),
    ({}, {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=s3cr3t-token%zz"}),
])
def test_a_bad_headers_value_is_reported_without_quoting_it(user, environ):
    config = resolve(user, environ)
    assert config.problems and config.otlp_headers == {}
    assert all("s3cr3t" not in p.message + p.hint for p in config.problems)


def test_python_instrumentation_excluded_urls_variables():
    assert resolve({}, {"OTEL_PYTHON_DJANGO_EXCLUDED_URLS": "^/a,^/b", "OTEL_PYTHON_EXCLUDED_URLS": "^/c"}
                   ).excluded_urls == ("^/a", "^/b")
    assert resolve({}, {"OTEL_PYTHON_EXCLUDED_URLS": "^/c"}).excluded_urls == ("^/c",)
