"""System checks: each id fires for its problem, with a hint, and `manage.py check` fails clearly."""

import pytest
from django.core.checks import WARNING
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from tracing_app import checks

MIDDLEWARE = checks.MIDDLEWARE_PATH


def messages():
    return checks.check_settings() + checks.check_middleware()


def ids():
    return [m.id for m in messages()]


def test_demo_settings_pass_every_check():
    assert messages() == []


@pytest.mark.parametrize(("tracing", "check_id"), [
    (["not", "a", "dict"], "tracing_app.E001"),
    ({"SERVICE_NAM": "shop"}, "tracing_app.E002"),
    ({"SAMPLE_RATIO": -1}, "tracing_app.E003"),
    ({"PROPAGATORS": ["tracecontext", "nonexistent-propagator"]}, "tracing_app.E005"),
])
def test_each_settings_problem_has_its_id_and_a_hint(tracing, check_id):
    with override_settings(TRACING=tracing):
        found = [m for m in messages() if m.id == check_id]
        assert found, ids()
        assert found[0].hint


def test_invalid_environment_variable_is_warning_w004(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")
    with override_settings(TRACING={}):
        [found] = [m for m in messages() if m.id == "tracing_app.W004"]
        assert found.level == WARNING and "OTEL_EXPORTER_OTLP_PROTOCOL" in found.msg


def test_integration_without_its_library_is_e006(monkeypatch):
    from tracing_app.integrations import REGISTRY, Entry, Requirement

    missing = Requirement("a_library_that_is_not_installed", "a-library", "1.0")
    monkeypatch.setitem(REGISTRY, "celery", Entry(REGISTRY["celery"].target, (missing,)))
    with override_settings(TRACING={}):
        assert "tracing_app.E006" in ids()


def test_integration_with_a_too_old_library_is_e006(monkeypatch):
    from tracing_app.integrations import REGISTRY, Entry, Requirement

    too_new = Requirement("celery", "celery", "999.0")
    monkeypatch.setitem(REGISTRY, "celery", Entry(REGISTRY["celery"].target, (too_new,)))
    with override_settings(TRACING={}):
        [message] = [m for m in checks.check_settings() if m.id == "tracing_app.E006"]
    assert "is older than 999.0" in message.msg and "celery>=999.0" in message.hint


def test_integration_with_a_library_newer_than_its_tested_range_is_w005(monkeypatch):
    import importlib.metadata

    from tracing_app.conf import requirements

    real = importlib.metadata.version
    monkeypatch.setattr(requirements.importlib.metadata, "version",
                        lambda name: "6.2.0" if name == "Django" else real(name))
    with override_settings(TRACING={}):
        found = [m for m in checks.check_settings() if m.id == "tracing_app.W005"]
    assert {m.msg.split()[1] for m in found} == {"django", "database", "management", "cache"}
    assert all("Django 6.2.0 is newer than the tested releases (<6.2)" in m.msg and m.hint for m in found)
    assert all(m.level == WARNING for m in found)


def test_a_subclass_or_re_export_of_the_middleware_is_found_by_class():
    # The re-export at the package root, the defining module, and a subclass are all the middleware.
    for path in ("tracing_app.TracingMiddleware", "tracing_app.integrations.django.middleware.TracingMiddleware",
                 "tests.test_checks.SubclassedMiddleware"):
        with override_settings(MIDDLEWARE=[path, "django.middleware.common.CommonMiddleware"]):
            assert ids() == [], path


def test_a_middleware_entry_that_does_not_import_is_not_ours():
    with override_settings(MIDDLEWARE=["no_such_module.Middleware"]):
        assert ids() == ["tracing_app.W001"]


def test_missing_middleware_is_w001():
    with override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware"]):
        assert ids() == ["tracing_app.W001"]


def test_middleware_not_first_is_w002():
    with override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware", MIDDLEWARE]):
        assert ids() == ["tracing_app.W002"]


def test_disabled_tracing_does_not_ask_for_the_middleware():
    with override_settings(TRACING={"ENABLED": False}, MIDDLEWARE=[]):
        assert ids() == []


def test_manage_check_fails_with_the_id_not_a_traceback():
    with override_settings(TRACING={"EXPORTER": "zipkin"}):
        with pytest.raises(SystemCheckError) as error:
            call_command("check")
    assert "tracing_app.E003" in str(error.value)
    assert "EXPORTER" in str(error.value)


def _subclassed_middleware():
    from tracing_app import TracingMiddleware

    return type("SubclassedMiddleware", (TracingMiddleware,), {"__module__": __name__})


SubclassedMiddleware = _subclassed_middleware()


@pytest.mark.parametrize(("typo", "meant"), [
    ("SERVICE_NAM", "SERVICE_NAME"),
    ("service_name", "SERVICE_NAME"),
    ("OTLP_ENDPIONT", "OTLP_ENDPOINT"),
    ("SAMPLE_RATE", "SAMPLE_RATIO"),
    ("INTEGRATION", "INTEGRATIONS"),
])
def test_an_unknown_key_gets_the_nearest_known_one(typo, meant):
    with override_settings(TRACING={typo: "x"}):
        [message] = [m for m in messages() if m.id == "tracing_app.E002"]
    assert message.hint == f"Did you mean {meant!r}?"


def test_an_unknown_key_like_no_other_lists_nothing():
    with override_settings(TRACING={"COLOUR": "blue", 7: "x"}):
        hints = [m.hint for m in messages() if m.id == "tracing_app.E002"]
    assert len(hints) == 2
    assert all("Did you mean" not in hint and "SERVICE_NAME" not in hint for hint in hints)


def endpoint_messages(tracing, monkeypatch=None, **environ):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with override_settings(TRACING=tracing):
        return checks.check_otlp_endpoint()


@pytest.mark.parametrize(("endpoint", "protocol", "check_id"), [
    ("127.0.0.1:4318", "http/protobuf", "tracing_app.E008"),
    ("localhost:4318", "http/protobuf", "tracing_app.E008"),
    ("jaeger", "http/protobuf", "tracing_app.E008"),
    ("grpc://collector:4317", "grpc", "tracing_app.E009"),
    ("udp://jaeger:6831", "http/protobuf", "tracing_app.E009"),
    ("tcp://collector:4318", "http/protobuf", "tracing_app.E009"),
    ("http://:4318", "http/protobuf", "tracing_app.E009"),
    ("http://collector:43x8", "http/protobuf", "tracing_app.E009"),
    ("http://jaeger:14268", "http/protobuf", "tracing_app.E010"),
    ("http://jaeger:14268/api/traces", "http/protobuf", "tracing_app.E010"),  # and W003 for the path
    ("http://jaeger:14250", "grpc", "tracing_app.E010"),
    ("http://zipkin:9411", "http/protobuf", "tracing_app.E010"),
    ("http://localhost:16686", "http/protobuf", "tracing_app.E010"),
    ("http://jaeger-agent:6831", "http/protobuf", "tracing_app.E010"),
    ("http://jaeger-agent:6832", "grpc", "tracing_app.E010"),
    ("http://jaeger:14269", "http/protobuf", "tracing_app.E010"),
    ("http://collector:4318", "grpc", "tracing_app.E011"),
    ("https://collector.example.com:4317", "http/protobuf", "tracing_app.E011"),
    ("http://collector:4318/v1/traces", "http/protobuf", "tracing_app.W003"),
    ("http://collector:4318/otlp", "http/protobuf", "tracing_app.W003"),
    ("http://collector:4317/v1/traces", "grpc", "tracing_app.W003"),
])
def test_each_endpoint_problem_has_its_id_and_a_hint(endpoint, protocol, check_id):
    found = endpoint_messages({"OTLP_ENDPOINT": endpoint, "OTLP_PROTOCOL": protocol})
    assert [m.id for m in found][:1] == [check_id], [m.msg for m in found]
    assert {m.id for m in found[1:]} <= {"tracing_app.W003"}
    assert found[0].hint and endpoint in found[0].msg


@pytest.mark.parametrize(("port", "right"), [(14268, "4318"), (9411, "4318"), (16686, "4318")])
def test_a_wrong_port_hint_names_the_protocols_port(port, right):
    [message] = endpoint_messages({"OTLP_ENDPOINT": f"http://jaeger:{port}"})
    assert f"'http://jaeger:{right}'" in message.hint
    [message] = endpoint_messages({"OTLP_ENDPOINT": f"http://jaeger:{port}", "OTLP_PROTOCOL": "grpc"})
    assert "'http://jaeger:4317'" in message.hint


def test_no_scheme_hint_is_the_url_to_write():
    [message] = endpoint_messages({"OTLP_ENDPOINT": "127.0.0.1:4318"})
    assert "'http://127.0.0.1:4318'" in message.hint


def test_the_environment_variable_is_checked_and_named(monkeypatch):
    [message] = endpoint_messages({}, monkeypatch, OTEL_EXPORTER_OTLP_ENDPOINT="127.0.0.1:4318")
    assert message.id == "tracing_app.E008" and "OTEL_EXPORTER_OTLP_ENDPOINT" in message.msg


def test_the_traces_endpoint_is_used_as_it_is_so_its_path_is_fine(monkeypatch):
    found = endpoint_messages({}, monkeypatch, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://gw.example.com/otlp/v1/traces")
    assert found == []
    [message] = endpoint_messages({}, monkeypatch, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://jaeger:14268/api/traces")
    assert message.id == "tracing_app.E010"


@pytest.mark.parametrize("tracing", [
    {"OTLP_ENDPOINT": "http://collector:4318"},
    {"OTLP_ENDPOINT": "https://collector.example.com"},
    {"OTLP_ENDPOINT": "http://[::1]:4318/"},
    {"OTLP_ENDPOINT": "http://collector:4317", "OTLP_PROTOCOL": "grpc"},
    {"OTLP_ENDPOINT": ""},
    {"OTLP_ENDPOINT": "127.0.0.1:4318", "EXPORTER": "console"},
    {"OTLP_ENDPOINT": "127.0.0.1:4318", "ENABLED": False},
])
def test_good_or_unused_endpoints_pass(tracing):
    assert endpoint_messages(tracing) == []


def test_manage_py_check_fails_on_an_endpoint_without_scheme():
    with override_settings(TRACING={"OTLP_ENDPOINT": "127.0.0.1:4318"}):
        with pytest.raises(SystemCheckError, match="tracing_app.E008"):
            call_command("check")


@pytest.mark.parametrize(("endpoint", "right", "why"), [
    ("localhost:14268", "'http://localhost:4318'", "Thrift"),
    ("jaeger:16686", "'http://jaeger:4318'", "Jaeger UI"),
    ("otel-collector:4317", "'http://otel-collector:4318'", "grpc port"),
    ("localhost:6831/api", "'http://localhost:4318'", "UDP"),
    ("[::1]:9411", "'http://[::1]:4318'", "Zipkin"),
])
def test_no_scheme_hint_also_puts_the_otlp_port_right(endpoint, right, why):
    """The URL E008 suggests passes the port checks too: following it does not lead to E010 or E011."""
    [message] = endpoint_messages({"OTLP_ENDPOINT": endpoint})
    assert message.id == "tracing_app.E008" and right in message.hint and why in message.hint
    assert endpoint_messages({"OTLP_ENDPOINT": right.strip("'")}) == []


def test_no_scheme_hint_keeps_a_port_that_may_be_a_collectors():
    [message] = endpoint_messages({"OTLP_ENDPOINT": "collector:8080"})
    assert "'http://collector:8080'" in message.hint
