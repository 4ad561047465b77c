"""Configuration: one declaration of every key, env over TRACING over defaults, problems not exceptions."""

import pytest
from django.test import override_settings

from tracing_app.conf import DEFAULT_INTEGRATIONS, KEYS, get_config, resolve
from tracing_app.conf import keys as conf


def test_defaults_without_any_setting():
    config = resolve(None, {})
    assert config.problems == ()
    assert config.enabled is True
    assert config.exporter == "otlp"
    assert config.otlp_protocol == "http/protobuf"
    assert config.traces_endpoint == "http://localhost:4318/v1/traces"
    assert config.propagators == ("tracecontext", "baggage")
    assert set(config.sources.values()) == {"default"}


def test_every_key_is_documented_and_its_default_parses():
    for key in KEYS:
        assert key.doc, key.name
        assert key.parse(key.default) == key.default or key.name == "INTEGRATIONS"


def test_tracing_setting_overrides_defaults_and_records_source():
    config = resolve({"SERVICE_NAME": "shop-web", "SAMPLE_RATIO": 0.25}, {})
    assert (config.service_name, config.sources["SERVICE_NAME"]) == ("shop-web", "TRACING")
    assert (config.sample_ratio, config.sources["SAMPLE_RATIO"]) == (0.25, "TRACING")
    assert config.sources["EXPORTER"] == "default"


def test_otel_environment_overrides_tracing_setting():
    config = resolve(
        {"SERVICE_NAME": "from-settings", "OTLP_ENDPOINT": "http://settings:4318"},
        {"OTEL_SERVICE_NAME": "from-env", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
         "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1",
         "OTEL_EXPORTER_OTLP_HEADERS": "api-key=secret,x-team=shop", "OTEL_BSP_SCHEDULE_DELAY": "250",
         "OTEL_RESOURCE_ATTRIBUTES": "team=checkout"},
    )
    assert (config.service_name, config.sources["SERVICE_NAME"]) == ("from-env", "env:OTEL_SERVICE_NAME")
    assert config.traces_endpoint == "http://env:4318/v1/traces"
    assert config.sample_ratio == 0.1
    assert config.otlp_headers == {"api-key": "secret", "x-team": "shop"}
    assert config.batch_schedule_delay == 0.25  # milliseconds in the variable, seconds in TRACING
    assert config.resource_attributes == {"team": "checkout"}


def test_signal_specific_endpoint_is_used_as_is_and_wins_over_the_generic_one():
    config = resolve({}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom",
                          "OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4318"})
    assert config.traces_endpoint == "http://c:4318/custom"


def test_grpc_endpoint_and_default_port():
    assert resolve({"OTLP_PROTOCOL": "grpc"}, {}).traces_endpoint == "http://localhost:4317"
    assert resolve({"OTLP_PROTOCOL": "grpc", "OTLP_ENDPOINT": "http://c:4317"}, {}).traces_endpoint == "http://c:4317"


def test_sdk_disabled_variable_switches_tracing_off():
    config = resolve({"ENABLED": True}, {"OTEL_SDK_DISABLED": "true"})
    assert config.enabled is False and config.sources["ENABLED"] == "env:OTEL_SDK_DISABLED"
    assert not config.integration_enabled("django")


def test_empty_environment_variable_is_ignored():
    assert resolve({"SERVICE_NAME": "web"}, {"OTEL_SERVICE_NAME": "  "}).service_name == "web"


@pytest.mark.parametrize(("user", "check_id", "key"), [
    ("not a dict", "tracing_app.E001", "TRACING"),
    ({"SERVICE_NAM": "typo"}, "tracing_app.E002", "SERVICE_NAM"),
    ({"SAMPLE_RATIO": 2}, "tracing_app.E003", "SAMPLE_RATIO"),
    ({"EXPORTER": "jaeger-thrift"}, "tracing_app.E003", "EXPORTER"),
    ({"INTEGRATIONS": {"django": True, "flask": True}}, "tracing_app.E003", "INTEGRATIONS"),
    ({"EXCLUDED_URLS": ["(unclosed"]}, "tracing_app.E003", "EXCLUDED_URLS"),
    ({"ENABLED": "maybe"}, "tracing_app.E003", "ENABLED"),
])
def test_bad_values_become_problems_and_fall_back_to_defaults(user, check_id, key):
    config = resolve(user, {})
    assert [(p.check_id, p.key) for p in config.problems] == [(check_id, key)]
    if key in conf.KEYS_BY_NAME:
        assert getattr(config, key.lower()) == conf.KEYS_BY_NAME[key].default


def test_bad_environment_variable_is_a_problem_naming_the_variable():
    config = resolve({}, {"OTEL_TRACES_SAMPLER_ARG": "lots"})
    assert [(p.check_id, p.key) for p in config.problems] == [("tracing_app.W004", "SAMPLE_RATIO")]
    assert "OTEL_TRACES_SAMPLER_ARG" in config.problems[0].message
    assert config.sample_ratio == 1.0


def test_user_dict_is_never_mutated():
    user = {"INTEGRATIONS": {"celery": False}}
    config = resolve(user, {})
    assert user == {"INTEGRATIONS": {"celery": False}}
    assert config.integrations == {**DEFAULT_INTEGRATIONS, "celery": False}


def test_typo_in_attribute_access_raises():
    with pytest.raises(AttributeError):
        resolve({}, {}).servce_name  # noqa: B018


def test_cached_config_is_cleared_when_tracing_setting_changes():
    before = get_config()
    assert get_config() is before
    with override_settings(TRACING={"SERVICE_NAME": "overridden"}):
        assert get_config().service_name == "overridden"
    assert get_config().service_name == before.service_name


def test_integration_sources_say_which_integrations_the_user_set():
    config = resolve({"INTEGRATIONS": {"grpc": True, "celery": False}}, {})
    assert config.integration_explicit("grpc") and config.integration_explicit("celery")
    assert not config.integration_explicit("http_client") and not config.integration_explicit("django")
    assert config.values["INTEGRATIONS"]["http_client"]  # on, by default
    for user in ({}, {"INTEGRATIONS": {"grpc": "maybe"}}, {"INTEGRATIONS": {}}):  # none set, or invalid: defaults
        config = resolve(user, {})
        assert not any(config.integration_explicit(name) for name in config.values["INTEGRATIONS"]), user
