"""Integrations and their libraries: grpc, http_client and celery are optional extras,
installed when their library imports and skipped otherwise; E006 only for an
integration the user switched on (or one whose library is not optional); a missing
library never stops the other integrations from installing."""

from __future__ import annotations

import importlib
import logging
import pathlib
import re
import tomllib

import pytest
from django.test import override_settings

from tracing_app import checks
from tracing_app.conf import DEFAULT_INTEGRATIONS, get_config, requirements
from tracing_app.integrations import REGISTRY, install_enabled

OPTIONAL = sorted(name for name, entry in REGISTRY.items() if entry.optional)


def without(monkeypatch, *modules):
    """Make ``modules`` look not installed (as in a virtualenv without that extra)."""
    real = requirements.importable
    monkeypatch.setattr(requirements, "importable", lambda module: module not in modules and real(module))


@pytest.fixture(autouse=True)
def watched_modules_imported():
    """As in a process that has imported every client library by start-up: these tests
    are about which integrations start-up installs; the ones it leaves pending until an
    import are in tests/test_on_import.py."""
    for entry in REGISTRY.values():
        if entry.on_import is not None:
            importlib.import_module(entry.on_import)


@pytest.fixture
def without_grpc(monkeypatch):
    without(monkeypatch, "grpc")


@pytest.fixture
def fake_install(monkeypatch):
    installed = []
    monkeypatch.setattr("tracing_app.integrations.get_integration",
                        lambda name: type("Fake", (), {"install": lambda self, config: installed.append(name)})())
    return installed


def e006(messages):
    return [m for m in messages if m.id == "tracing_app.E006"]


def test_grpc_and_http_client_are_integrations_on_by_default():
    assert {"grpc", "http_client"} <= set(REGISTRY) <= set(DEFAULT_INTEGRATIONS)
    assert DEFAULT_INTEGRATIONS["grpc"] and DEFAULT_INTEGRATIONS["http_client"]


@override_settings(TRACING={"INTEGRATIONS": {"grpc": True}})
def test_grpc_enabled_without_grpcio_is_e006(without_grpc):
    [message] = e006(checks.check_settings())
    assert "grpc" in message.msg and "'grpc' is not installed" in message.msg
    assert "{'grpc': False}" in message.hint


@override_settings(TRACING={"INTEGRATIONS": {"http_client": True}})
def test_http_client_needs_the_requests_instrumentation_too(monkeypatch):
    without(monkeypatch, "opentelemetry.instrumentation.requests")
    [message] = e006(checks.check_settings())
    assert "opentelemetry.instrumentation.requests" in message.msg


@override_settings(TRACING={"INTEGRATIONS": {"grpc": False}})
def test_grpc_switched_off_without_grpcio_is_fine(without_grpc):
    assert e006(checks.check_settings()) == []


@override_settings(TRACING={"EXPORTER": "none"})
def test_a_missing_library_skips_only_its_integration(without_grpc, monkeypatch):
    installed = []
    monkeypatch.setattr("tracing_app.integrations.get_integration",
                        lambda name: type("Fake", (), {"install": lambda self, config: installed.append(name)})())
    names = install_enabled(get_config())
    assert "grpc" not in names and "grpc" not in installed
    assert {"django", "database", "http_client"} <= set(names) == set(installed)


@override_settings(TRACING={"INTEGRATIONS": {"grpc": False, "http_client": False}})
def test_switched_off_they_are_not_installed(monkeypatch):
    installed = []
    monkeypatch.setattr("tracing_app.integrations.get_integration",
                        lambda name: type("Fake", (), {"install": lambda self, config: installed.append(name)})())
    install_enabled(get_config())
    assert "grpc" not in installed and "http_client" not in installed and "django" in installed


def test_a_dotted_module_whose_parent_is_missing_is_not_importable():
    assert requirements.importable("no_such_package_xyz.sub") is False


def test_the_extras_are_the_optional_integrations():
    assert OPTIONAL == ["aiohttp", "celery", "grpc", "http_client", "httpx", "urllib", "urllib3"]


def test_every_integration_needing_more_than_the_core_dependencies_is_optional():
    # The rule for integrations added later: a library that `pip install django-tracing-app`
    # does not bring is an extra, so its integration must be Entry(optional=True).
    pyproject = tomllib.loads((pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text())
    core = {re.split(r"[<>=!\[ ;]", dep)[0].lower() for dep in pyproject["project"]["dependencies"]}
    for name, entry in REGISTRY.items():
        extra = [r.distribution for r in entry.requires if r.distribution.lower() not in core]
        assert entry.optional == bool(extra), (name, extra)


@pytest.mark.parametrize(("name", "module"), [(name, r.module) for name in OPTIONAL for r in REGISTRY[name].requires])
@override_settings(TRACING={"EXPORTER": "none"})
def test_an_optional_library_left_out_by_default_is_skipped_with_one_debug_line(name, module, monkeypatch,
                                                                                 fake_install, caplog):
    without(monkeypatch, module)
    with caplog.at_level(logging.DEBUG, logger="tracing_app"):
        names = install_enabled(get_config())
    assert name not in names and name not in fake_install
    assert {"django", "database", "logging"} <= set(names)
    assert e006(checks.check_settings()) == []
    about_it = [r for r in caplog.records if f"the {name} integration" in r.getMessage()]
    assert [(r.levelno, repr(module) in r.getMessage()) for r in about_it] == [(logging.DEBUG, True)]


@pytest.mark.parametrize("name", OPTIONAL)
def test_an_optional_integration_switched_on_explicitly_without_its_library_is_e006(name, monkeypatch):
    without(monkeypatch, REGISTRY[name].requires[0].module)
    with override_settings(TRACING={"INTEGRATIONS": {name: True}}):
        [message] = e006(checks.check_settings())
    assert f"The {name} integration is enabled" in message.msg
    assert f"{{{name!r}: False}}" in message.hint
    with override_settings(TRACING={"INTEGRATIONS": {name: False}}):
        assert e006(checks.check_settings()) == []


@pytest.mark.parametrize("name", OPTIONAL)
def test_an_optional_integration_with_its_library_is_installed_by_default(name, fake_install):
    with override_settings(TRACING={"EXPORTER": "none"}):
        assert name in install_enabled(get_config())
    assert name in fake_install


def test_a_library_that_is_not_optional_is_e006_even_by_default(monkeypatch):
    without(monkeypatch, "django")
    with override_settings(TRACING={}):
        assert {m.msg.split(" integration")[0] for m in e006(checks.check_settings())} == {
            "The django", "The database", "The management", "The cache"}


@pytest.mark.parametrize("environ", [{}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                                     {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}])
def test_otlp_over_grpc_without_the_grpc_extra_is_e006(environ, monkeypatch):
    for var, value in environ.items():
        monkeypatch.setenv(var, value)
    tracing = {} if environ else {"OTLP_PROTOCOL": "grpc"}
    for missing in ("grpc",):
        monkeypatch.setattr(requirements, "importable", lambda module, missing=missing: module != missing)
        with override_settings(TRACING=tracing):
            [message] = e006(checks.check_settings())
        assert message.msg.startswith("OTLP_PROTOCOL is 'grpc' but") and repr(missing) in message.msg
        assert "http/protobuf" in message.hint


def test_otlp_over_http_does_not_need_grpc(monkeypatch):
    without(monkeypatch, "grpc")
    with override_settings(TRACING={"INTEGRATIONS": {"grpc": False}}):
        assert e006(checks.check_settings()) == []
