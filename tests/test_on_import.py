"""An integration whose library the process has not imported by start-up (the HTTP
clients, gRPC: ``Entry(on_import=...)``) is pending, and is installed by the process's
first import of that library: all-or-nothing and on its own as at start-up, reported
honestly while it waits, and never installed after ``stop()``.

In-process tests use a module written for the test (no one has imported it); the
subprocess tests start Django with the demo's settings and import a real client library
after ``ready()``, exporting to a real OTLP receiver."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.test_http_clients import Service
from tracing_app import integrations
from tracing_app.conf import get_config
from tracing_app.devtools.receiver import OTLPReceiver
from tracing_app.integrations import Entry, install_enabled, installed_integrations, pending_integrations
from tracing_app.integrations.base import Integration

ROOT = Path(__file__).resolve().parents[1]


class Recorder(Integration):
    """Connects one hook, then fails when told to (before ``_install`` returns)."""

    def __init__(self, name: str, fail: bool = False) -> None:
        super().__init__()
        self.name = name
        self.fail = fail
        self.connected: list[str] = []

    def _install(self, config: object) -> None:
        self.connected.append("hook")
        if self.fail:
            raise RuntimeError("cannot patch this release")

    def _uninstall(self) -> None:
        self.connected.clear()


LAZY_FIRST = Recorder("lazy_first")
LAZY_SECOND = Recorder("lazy_second")
ALREADY_IMPORTED = Recorder("already_imported")


@pytest.fixture
def library(tmp_path, monkeypatch) -> str:
    """The name of a module no one has imported yet, importable from ``sys.path``."""
    name = f"tracing_app_lazy_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def registry(monkeypatch, library):
    """Three integrations of this module in place of REGISTRY: two waiting for ``library``,
    one for ``json`` (imported long ago). Returns the config that enables them."""
    module = sys.modules[__name__]
    for attribute, name in (("LAZY_FIRST", "lazy_first"), ("LAZY_SECOND", "lazy_second"),
                            ("ALREADY_IMPORTED", "already_imported")):
        monkeypatch.setattr(module, attribute, Recorder(name))
    monkeypatch.setattr(integrations, "REGISTRY", {
        "lazy_first": Entry(f"{__name__}:LAZY_FIRST", optional=True, on_import=library),
        "lazy_second": Entry(f"{__name__}:LAZY_SECOND", optional=True, on_import=library),
        "already_imported": Entry(f"{__name__}:ALREADY_IMPORTED", optional=True, on_import="json"),
    })
    config = get_config()
    yield dataclasses.replace(config, values={**config.values, "INTEGRATIONS": dict.fromkeys(integrations.REGISTRY,
                                                                                               True)})
    integrations.uninstall_all()  # what a test left pending or installed


def test_pending_until_its_module_is_first_imported_then_installed(registry, library, caplog):
    with caplog.at_level(logging.DEBUG, logger="tracing_app"):
        assert install_enabled(registry) == ["already_imported"]  # json is imported: at once, as before
    assert library not in sys.modules
    assert installed_integrations() == ["already_imported"]
    assert pending_integrations() == ["lazy_first", "lazy_second"]
    assert not LAZY_FIRST.installed and LAZY_FIRST.connected == []
    assert f"the lazy_first integration is pending: installed when {library} is first imported" in caplog.text

    with caplog.at_level(logging.DEBUG, logger="tracing_app"):
        assert importlib.import_module(library).LOADED
    assert LAZY_FIRST.installed and LAZY_SECOND.installed
    assert LAZY_FIRST.connected == ["hook"]
    assert installed_integrations() == ["lazy_first", "lazy_second", "already_imported"]
    assert pending_integrations() == []
    assert f"the lazy_second integration is installed now that {library} is imported" in caplog.text


def test_starting_twice_while_pending_installs_once_on_the_import(registry, library):
    install_enabled(registry)
    install_enabled(registry)
    importlib.import_module(library)
    assert LAZY_FIRST.connected == ["hook"] and LAZY_SECOND.connected == ["hook"]


def test_uninstall_all_drops_pending_installs_so_a_later_import_installs_nothing(registry, library):
    install_enabled(registry)
    integrations.uninstall_all()  # lifecycle.stop()
    assert pending_integrations() == [] and installed_integrations() == []
    importlib.import_module(library)
    assert not LAZY_FIRST.installed and not LAZY_SECOND.installed
    assert LAZY_FIRST.connected == [] and LAZY_SECOND.connected == []


def test_uninstalling_one_pending_integration_drops_only_its_install(registry, library):
    install_enabled(registry)
    LAZY_FIRST.uninstall()
    assert pending_integrations() == ["lazy_second"]
    importlib.import_module(library)
    assert not LAZY_FIRST.installed and LAZY_FIRST.connected == []
    assert LAZY_SECOND.installed


def test_started_again_after_stop_the_import_installs(registry, library):
    install_enabled(registry)
    integrations.uninstall_all()
    install_enabled(registry)
    importlib.import_module(library)
    assert LAZY_FIRST.installed and LAZY_SECOND.installed
    assert LAZY_FIRST.connected == ["hook"]


def test_an_install_failing_on_import_is_rolled_back_and_breaks_neither_the_import_nor_the_others(
        registry, library, monkeypatch, caplog):
    monkeypatch.setattr(sys.modules[__name__], "LAZY_FIRST", Recorder("lazy_first", fail=True))
    install_enabled(registry)
    with caplog.at_level(logging.ERROR, logger="tracing_app"):
        module = importlib.import_module(library)  # raises if the hook raised
    assert module.LOADED and sys.modules[library] is module
    assert not LAZY_FIRST.installed and LAZY_FIRST.connected == []  # what it had connected is undone
    assert LAZY_SECOND.installed
    assert installed_integrations() == ["lazy_second", "already_imported"]
    assert pending_integrations() == []
    assert "the lazy_first integration could not be installed" in caplog.text


# -- a real client library, imported after ready() in a Django process ----------------------

# Per library: its integration switch, and a GET of URL returning the status.
CALLS = {
    "httpx": ("httpx", "import httpx\nstatus = httpx.get(URL, timeout=10).status_code"),
    "requests": ("http_client", "import requests\nstatus = requests.get(URL, timeout=10).status_code"),
    "aiohttp": ("aiohttp", textwrap.dedent("""\
        import asyncio
        import aiohttp

        async def get():
            async with aiohttp.ClientSession() as session, session.get(URL) as response:
                return response.status

        status = asyncio.run(get())""")),
}

PROBE = """
import json, sys
import django
django.setup()
from tracing_app import integrations, lifecycle
from tracing_app.pipeline import provider

LIBRARY, MODE, URL = sys.argv[1:4]


def state():
    return {"imported": LIBRARY in sys.modules, "installed": integrations.installed_integrations(),
            "pending": integrations.pending_integrations()}


report = {"at_start": state()}
if MODE == "stopped":
    lifecycle.stop()
elif MODE == "failing":
    import contextlib
    from tracing_app.integrations.http_client import instrumentor

    @contextlib.contextmanager
    def broken():  # fails inside _install, after the urllib3 integration has wrapped urlopen
        raise RuntimeError("instrumentation refused")
        yield

    instrumentor.stable_http_semconv = broken
report["before_import"] = state()
with provider.get_tracer().start_as_current_span("task"):
{call}
report["status"] = status
report["after_import"] = state()
if "urllib3" in sys.modules:
    from urllib3.connectionpool import HTTPConnectionPool

    report["urlopen_wrapped"] = hasattr(HTTPConnectionPool.urlopen, "__wrapped__")
provider.force_flush()
print(json.dumps(report))
"""


def run_probe(library: str, mode: str, otlp: OTLPReceiver, url: str) -> dict:
    _, call = CALLS[library]
    script = PROBE.replace("{call}", textwrap.indent(call, "    "))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    environ.update({"DJANGO_SETTINGS_MODULE": "project.settings", "DATABASE_URL": "sqlite:///:memory:",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "PYTHONPATH": str(ROOT)})
    result = subprocess.run([sys.executable, "-c", script, library, mode, url], cwd=ROOT, env=environ,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"probe failed:\n{result.stdout}\n{result.stderr}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["log"] = result.stderr
    return report


@pytest.fixture
def service():
    running = Service()
    yield running
    running.stop()


@pytest.mark.parametrize("library", list(CALLS))
def test_a_client_library_imported_after_ready_is_traced_from_its_first_import(library, service):
    switch, _ = CALLS[library]
    with OTLPReceiver() as otlp:
        report = run_probe(library, "traced", otlp, service.url("/ok"))
        assert report["at_start"]["imported"] is False, f"{library} was imported at start-up"
        assert switch in report["at_start"]["pending"] and switch not in report["at_start"]["installed"]
        assert switch in report["after_import"]["installed"] and switch not in report["after_import"]["pending"]
        assert report["status"] == 200
        spans = otlp.wait_for(lambda spans: any(s.kind == "CLIENT" for s in spans), timeout=60)
    [task] = [s for s in spans if s.name == "task"]
    [client] = [s for s in spans if s.kind == "CLIENT"]
    assert (client.name, client.parent_id, client.trace_id) == ("GET", task.span_id, task.trace_id)
    assert {key: client.attributes.get(key) for key in ("http.request.method", "url.full", "server.address",
                                                         "server.port", "http.response.status_code")} == {
        "http.request.method": "GET", "url.full": service.url("/ok"), "server.address": "127.0.0.1",
        "server.port": service.port, "http.response.status_code": 200}
    [received] = service.headers
    assert received["traceparent"].split("-")[1:3] == [client.trace_id, client.span_id]


@pytest.mark.parametrize("library", list(CALLS))
def test_after_stop_the_first_import_of_a_client_library_installs_nothing(library, service):
    switch, _ = CALLS[library]
    with OTLPReceiver() as otlp:
        report = run_probe(library, "stopped", otlp, service.url("/ok"))
        assert switch in report["at_start"]["pending"]
        assert report["before_import"] == {"imported": False, "installed": [], "pending": []}
        assert report["after_import"]["installed"] == [] and report["after_import"]["pending"] == []
        assert report["status"] == 200
        spans = otlp.wait_for(lambda spans: any(s.name == "task" for s in spans), timeout=60)
    assert [s.kind for s in spans if s.kind == "CLIENT"] == []
    [received] = service.headers
    assert "traceparent" not in received


@pytest.mark.parametrize("library", list(CALLS))
def test_an_install_failing_on_the_first_import_leaves_the_library_working_and_untraced(library, service):
    switch, _ = CALLS[library]
    with OTLPReceiver() as otlp:
        report = run_probe(library, "failing", otlp, service.url("/ok"))
    assert report["status"] == 200  # the import and the request worked
    assert switch not in report["after_import"]["installed"] and switch not in report["after_import"]["pending"]
    assert f"the {switch} integration could not be installed" in report["log"]
    assert report.get("urlopen_wrapped", False) is False  # urllib3's partial install was rolled back
    assert {"django", "database"} <= set(report["after_import"]["installed"])  # the others are unaffected
    [received] = service.headers
    assert "traceparent" not in received
