"""Starting tracing: once per process, every integration undoable, nothing at all when disabled."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import signals
from django.apps import apps
from django.db import connection

from tracing_app import integrations as integration
from tracing_app.conf import get_config
from tracing_app.devtools.receiver import OTLPReceiver
from tracing_app.integrations import REGISTRY
from tracing_app.lifecycle import start
from tracing_app.pipeline import provider

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json
from django.db import connection
from django.test import Client
from celery import signals
from tracing_app import integrations as integration
from tracing_app.pipeline import provider
Client().get("/api/orders/")  # 405: no database needed
print(json.dumps({
    "provider": provider.get_provider() is not None,
    "installed": integration.installed_integrations(),
    "pending": integration.pending_integrations(),
    "celery_receivers": len(signals.before_task_publish.receivers),
    "execute_wrappers": len(connection.execute_wrappers),
}))
"""


def tracing_receivers():
    return [r for r in signals.before_task_publish.receivers if "tracing_app" in str(r[0])]


def database_wrappers() -> list:
    module = "tracing_app.integrations.database"
    return [w for w in connection.execute_wrappers if type(w).__module__.startswith(module)]


def test_ready_twice_changes_nothing():
    before = provider.get_provider()
    receivers = list(signals.before_task_publish.receivers)
    apps.get_app_config("tracing_app").ready()
    assert sorted(start() + integration.pending_integrations()) == sorted(REGISTRY)
    assert provider.get_provider() is before
    assert list(signals.before_task_publish.receivers) == receivers
    assert len(tracing_receivers()) == 1


@pytest.mark.django_db
def test_each_integration_uninstalls_and_reinstalls_cleanly():
    connection.ensure_connection()
    integration.uninstall_all()
    try:
        assert tracing_receivers() == []
        assert not database_wrappers()
    finally:
        integration.install_enabled(get_config())
    assert len(tracing_receivers()) == 1
    assert len(database_wrappers()) == 1


def run_probe(otlp, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    environ.update({
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": "sqlite:///:memory:",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        **env,
    })
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", PROBE], cwd=ROOT, env=environ,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_disabled_tracing_installs_nothing_and_exports_nothing():
    with OTLPReceiver() as otlp:
        state = run_probe(otlp, OTEL_SDK_DISABLED="true")
        assert state == {"provider": False, "installed": [], "pending": [], "celery_receivers": 0,
                         "execute_wrappers": 0}
        assert otlp.requests == 0

        # The same probe with tracing on exports the request span: the check above can fail.
        state = run_probe(otlp)
        assert state["provider"]
        # Each enabled integration is installed, or pending until its library's first import
        # (the probe never imports aiohttp, for one): tests/test_on_import.py.
        assert not set(state["installed"]) & set(state["pending"])
        assert sorted(state["installed"] + state["pending"]) == sorted(REGISTRY)
        assert "aiohttp" in state["pending"]
        spans = otlp.wait_for(lambda spans: len(spans) >= 1, timeout=10)
        assert [s.name for s in spans if s.kind == "SERVER"] == ["GET api/orders/"]
