"""Integrations: one module or package per host library, each an ``Integration``
(``base``) that hooks that library into tracing and can be undone.

``AppConfig.ready()`` calls ``install_enabled(config)``; nothing else patches or
connects anything. Integrations use ``tracing_app.context`` and
``tracing_app.pipeline``, never each other (``.importlinter``).

``REGISTRY`` declares, per ``TRACING["INTEGRATIONS"]`` name, where the integration
lives and the libraries it needs, each with the releases we test it with (``Requirement``:
the oldest supported, the first untested; pyproject.toml claims the same). It is read
without importing the integration, so a missing library is skipped or reported
instead of raised.

An integration whose library is an optional extra (``Entry(optional=True)``: celery,
grpc, http_client, and every one added later) follows one rule: on by default, it
is installed when its library imports and skipped otherwise with one debug line,
so a project without that library still passes ``manage.py check``. Switched on
explicitly in ``TRACING["INTEGRATIONS"]``, a missing library is the system check
``tracing_app.E006``, as it is for a library that is not optional.

An integration with ``Entry(on_import=module)`` (the HTTP clients, gRPC) whose module
the process has not imported by start-up is *pending* (``pending_integrations()``):
it is installed when the process first imports that module (``on_import``), so a
process that never uses a client library does not load it or its instrumentation.
``uninstall_all()`` (``lifecycle.stop()``) drops pending installs too.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import sys

from tracing_app.conf import TracingConfig
from tracing_app.conf.requirements import Requirement, unmet
from tracing_app.integrations import on_import
from tracing_app.integrations.base import Integration

logger = logging.getLogger(__name__)

__all__ = ["REGISTRY", "Entry", "Requirement", "get_integration", "install_enabled", "installed_integrations",
           "pending_integrations", "uninstall_all", "unmet_requirement", "wanted_but_unmet"]


@dataclasses.dataclass(frozen=True)
class Entry:
    target: str  # "module:attribute" of the Integration instance
    requires: tuple[Requirement, ...] = ()
    # The library is an extra of the package: without it, the integration is skipped
    # unless the user switched it on explicitly (then E006).
    optional: bool = False
    # The module whose first import installs the integration when the process has not
    # imported it by start-up (the integration is pending until then); None: installed
    # at start-up.
    on_import: str | None = None


_DJANGO = Requirement("django", "Django", "5.2", below="6.2")


def _http_client(module: str, distribution: str | None, minimum: str, instrumentation: str) -> Entry:
    """An HTTP client integration: ``http_client/<module>.py``, needing the client library
    (none for the standard library's ``urllib``) and its OpenTelemetry instrumentation."""
    library = (Requirement(module, distribution, minimum),) if distribution else ()
    dashed = instrumentation.replace("_", "-")
    return Entry(f"tracing_app.integrations.http_client.{module}:integration", (
        *library,
        Requirement(f"opentelemetry.instrumentation.{instrumentation}", f"opentelemetry-instrumentation-{dashed}",
                    "0.51b0", below="0.67"),
    ), optional=True, on_import="urllib.request" if module == "urllib" else module)


REGISTRY: dict[str, Entry] = {
    "django": Entry("tracing_app.integrations.django.middleware:integration", (_DJANGO,)),
    "celery": Entry("tracing_app.integrations.celery.signals:integration",
                    (Requirement("celery", "celery", "5.3", below="5.8"),), optional=True),
    "database": Entry("tracing_app.integrations.database.queries:integration", (_DJANGO,)),
    "management": Entry("tracing_app.integrations.django.commands:integration", (_DJANGO,)),
    "cache": Entry("tracing_app.integrations.cache:integration", (_DJANGO,)),
    "logging": Entry("tracing_app.integrations.logs:integration"),
    # gRPC is traced only by our interceptors, and the module they share imports grpc: that
    # module is the one watched (a hook on grpc itself would fire while it is half-run), and
    # the target names it, not its package, which is still half-run when the hook fires.
    "grpc": Entry("tracing_app.integrations.grpc.common:integration", (Requirement("grpc", "grpcio", "1.60"),),
                  optional=True, on_import="tracing_app.integrations.grpc.common"),
    # Outgoing HTTP, one switch per client library ("http_client" is requests: the name it
    # had before the others came). Each needs its library and its OpenTelemetry instrumentation.
    "http_client": _http_client("requests", "requests", "2.0", "requests"),
    "httpx": _http_client("httpx", "httpx", "0.23", "httpx"),
    "urllib3": _http_client("urllib3", "urllib3", "1.26", "urllib3"),
    "urllib": _http_client("urllib", None, "", "urllib"),
    "aiohttp": _http_client("aiohttp", "aiohttp", "3.8", "aiohttp_client"),
}


def unmet_requirement(name: str) -> str | None:
    """Why integration ``name`` cannot be installed here ("'grpc' is not installed",
    "grpcio 1.50.0 is older than 1.60"), or None when every library it needs is there."""
    return unmet(REGISTRY[name].requires)


def wanted_but_unmet(config: TracingConfig, name: str) -> str | None:
    """Why integration ``name`` cannot be installed although it must be (system check
    ``tracing_app.E006``): it is enabled, a library it needs is missing or too old, and
    either that library is not optional or the user switched the integration on in
    ``TRACING["INTEGRATIONS"]``. None otherwise."""
    if not config.integration_enabled(name):
        return None
    if REGISTRY[name].optional and not config.integration_explicit(name):
        return None
    return unmet_requirement(name)


def get_integration(name: str) -> Integration:
    module, _, attribute = REGISTRY[name].target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def install_enabled(config: TracingConfig) -> list[str]:
    """Install every enabled integration whose libraries are here, each on its own:
    one that fails to install is logged, rolled back (``Integration.install``) and
    skipped, and the others are still installed. An ``Entry(on_import=...)`` whose
    module is not imported yet is left pending instead (``pending_integrations()``).
    Returns the names installed now."""
    installed = []
    for name, entry in REGISTRY.items():
        if not config.integration_enabled(name):
            continue
        why = unmet_requirement(name)
        if why is not None:
            # An optional library left out, or reported by the system check tracing_app.E006;
            # either way the rest is still traced.
            logger.debug("tracing_app: the %s integration is skipped: %s", name, why)
            continue
        if entry.on_import is not None and entry.on_import not in sys.modules:
            logger.debug("tracing_app: the %s integration is pending: installed when %s is first imported",
                         name, entry.on_import)
            on_import.defer(name, entry.on_import, lambda name=name: _install_on_import(name, config))
            continue
        if _install(name, config):
            installed.append(name)
    return installed


def _install(name: str, config: TracingConfig) -> bool:
    try:
        get_integration(name).install(config)
    except Exception:
        logger.exception("tracing_app: the %s integration could not be installed; it is skipped, "
                         "the other integrations are unaffected", name)
        return False
    return True


def _install_on_import(name: str, config: TracingConfig) -> None:
    # Runs inside the application's `import`: it must not raise (_install logs instead), or
    # that import would fail.
    if _install(name, config):
        logger.debug("tracing_app: the %s integration is installed now that %s is imported",
                     name, REGISTRY[name].on_import)


def installed_integrations() -> list[str]:
    """Names of the integrations installed in this process now."""
    return [name for name, module, attribute in _loaded() if getattr(module, attribute).installed]


def pending_integrations() -> list[str]:
    """Names of the enabled integrations waiting for their module's first import
    (``Entry.on_import``): not installed yet, installed by that import."""
    return [name for name in REGISTRY if name in on_import.pending()]


def uninstall_all() -> None:
    """Uninstall every installed integration and drop every pending install, each on its
    own (one failing does not stop the others)."""
    for name in REGISTRY:
        on_import.cancel(name)
    for name, module, attribute in _loaded():
        try:
            getattr(module, attribute).uninstall()
        except Exception:
            logger.exception("tracing_app: the %s integration could not be uninstalled", name)


def _loaded() -> list[tuple[str, object, str]]:
    found = []
    for name, entry in REGISTRY.items():
        module_name, _, attribute = entry.target.partition(":")
        module = sys.modules.get(module_name)  # never imported: never installed
        if module is not None:
            found.append((name, module, attribute))
    return found
