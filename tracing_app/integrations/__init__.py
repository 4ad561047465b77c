"""Integrations: one module or package per host library, each an ``Integration``
(``base``) that hooks that library into tracing and can be undone.

``AppConfig.ready()`` calls ``install_enabled(config)``; nothing else patches or
connects anything. Integrations use ``tracing_app.context`` and
``tracing_app.pipeline``, never each other (``.importlinter``).

``REGISTRY`` declares, per ``TRACING["INTEGRATIONS"]`` name, where the integration
lives and the libraries (with the oldest version we support) it needs. It is read
without importing the integration, so a missing library is reported (system check
``tracing_app.E006``) instead of raised.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import logging
import re
import sys

from tracing_app.conf import TracingConfig
from tracing_app.integrations.base import Integration

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Requirement:
    """A library an integration needs: the module it imports, the distribution that
    provides it, and the oldest release we support (``>= minimum``)."""

    module: str
    distribution: str
    minimum: str


@dataclasses.dataclass(frozen=True)
class Entry:
    target: str  # "module:attribute" of the Integration instance
    requires: tuple[Requirement, ...] = ()


_DJANGO = Requirement("django", "Django", "4.2")


def _http_client(module: str, distribution: str | None, minimum: str, instrumentation: str) -> Entry:
    """An HTTP client integration: ``http_client/<module>.py``, needing the client library
    (none for the standard library's ``urllib``) and its OpenTelemetry instrumentation."""
    library = (Requirement(module, distribution, minimum),) if distribution else ()
    dashed = instrumentation.replace("_", "-")
    return Entry(f"tracing_app.integrations.http_client.{module}:integration", (
        *library,
        Requirement(f"opentelemetry.instrumentation.{instrumentation}", f"opentelemetry-instrumentation-{dashed}",
                    "0.50b0"),
    ))


REGISTRY: dict[str, Entry] = {
    "django": Entry("tracing_app.integrations.django.middleware:integration", (_DJANGO,)),
    "celery": Entry("tracing_app.integrations.celery.signals:integration",
                    (Requirement("celery", "celery", "5.3"),)),
    "database": Entry("tracing_app.integrations.database.queries:integration", (_DJANGO,)),
    "logging": Entry("tracing_app.integrations.logs:integration"),
    "grpc": Entry("tracing_app.integrations.grpc:integration", (Requirement("grpc", "grpcio", "1.60"),)),
    # Outgoing HTTP, one switch per client library ("http_client" is requests: the name it
    # had before the others came). Each needs its library and its OpenTelemetry instrumentation.
    "http_client": _http_client("requests", "requests", "2.0", "requests"),
    "httpx": _http_client("httpx", "httpx", "0.23", "httpx"),
    "urllib3": _http_client("urllib3", "urllib3", "1.26", "urllib3"),
    "urllib": _http_client("urllib", None, "", "urllib"),
    "aiohttp": _http_client("aiohttp", "aiohttp", "3.8", "aiohttp_client"),
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def _release(version: str) -> tuple[int, ...]:
    """The leading release numbers of a version string: ``"0.50b0"`` -> ``(0, 50)``."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0].split("b")[0].split("rc")[0])[:3])


def unmet_requirement(name: str) -> str | None:
    """Why integration ``name`` cannot be installed here ("'grpc' is not installed",
    "grpcio 1.50.0 is older than 1.60"), or None when every library it needs is there."""
    for requirement in REGISTRY[name].requires:
        if not _importable(requirement.module):
            return f"{requirement.module!r} is not installed"
        try:
            version = importlib.metadata.version(requirement.distribution)
        except importlib.metadata.PackageNotFoundError:
            continue  # importable but not installed as a distribution (vendored, a source tree): trust it
        if _release(version) < _release(requirement.minimum):
            return f"{requirement.distribution} {version} is older than {requirement.minimum}"
    return None


def get_integration(name: str) -> Integration:
    module, _, attribute = REGISTRY[name].target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def install_enabled(config: TracingConfig) -> list[str]:
    """Install every enabled integration whose libraries are here, each on its own:
    one that fails to install is logged, rolled back (``Integration.install``) and
    skipped, and the others are still installed. Returns the names installed."""
    installed = []
    for name in REGISTRY:
        if not config.integration_enabled(name):
            continue
        unmet = unmet_requirement(name)
        if unmet is not None:
            # Reported by the system check tracing_app.E006; the rest is still traced.
            logger.debug("tracing_app: %s integration skipped: %s", name, unmet)
            continue
        try:
            get_integration(name).install(config)
        except Exception:
            logger.exception("tracing_app: the %s integration could not be installed; it is skipped, "
                             "the other integrations are unaffected", name)
            continue
        installed.append(name)
    return installed


def installed_integrations() -> list[str]:
    """Names of the integrations installed in this process now."""
    return [name for name, module, attribute in _loaded() if getattr(module, attribute).installed]


def uninstall_all() -> None:
    """Uninstall every installed integration, each on its own (one failing does not stop the others)."""
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
