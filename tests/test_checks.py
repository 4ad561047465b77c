"""System checks: each id fires for its problem, with a hint, and `manage.py check` fails clearly."""

import pytest
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


def test_invalid_environment_variable_is_e004(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")
    with override_settings(TRACING={}):
        assert "tracing_app.E004" in ids()


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
