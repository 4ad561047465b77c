"""The grpc and http_client integrations: switched by TRACING['INTEGRATIONS'], E006 without
their library, and a missing library never stops the other integrations from installing."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tracing_app import checks, integrations
from tracing_app.conf import DEFAULT_INTEGRATIONS, get_config
from tracing_app.integrations import REGISTRY, install_enabled


@pytest.fixture
def without_grpc(monkeypatch):
    real = integrations._importable
    monkeypatch.setattr(integrations, "_importable", lambda module: module != "grpc" and real(module))


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
    real = integrations._importable
    monkeypatch.setattr(integrations, "_importable",
                        lambda m: m != "opentelemetry.instrumentation.requests" and real(m))
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
    assert integrations._importable("no_such_package_xyz.sub") is False
