"""Integrations: objects that hook one library into tracing, installable once and undoable.

``AppConfig.ready()`` calls ``install_enabled(config)``; nothing else patches or
connects anything. Each integration uses the host's public extension points
(Django middleware and ``connection.execute_wrappers``, Celery signals).
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading

from .conf import TracingConfig

logger = logging.getLogger(__name__)

# INTEGRATIONS key -> "module:attribute". Imported only when enabled, so a
# disabled integration's library is never imported.
REGISTRY = {
    "django": "tracing_app.middleware:integration",
    "celery": "tracing_app.celery_signals:integration",
    "database": "tracing_app.db:integration",
    "logging": "tracing_app.logs:integration",
    "grpc": "tracing_app.grpc_interceptors:integration",
    "http_client": "tracing_app.http_client:integration",
}


class Integration:
    """Base class: subclasses implement ``_install`` and ``_uninstall``."""

    name = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.installed = False

    def install(self, config: TracingConfig) -> None:
        with self._lock:
            if self.installed:
                return
            self._install(config)
            self.installed = True
            logger.debug("tracing_app: %s integration installed", self.name)

    def uninstall(self) -> None:
        with self._lock:
            if not self.installed:
                return
            self._uninstall()
            self.installed = False

    def _install(self, config: TracingConfig) -> None:
        raise NotImplementedError

    def _uninstall(self) -> None:
        raise NotImplementedError


def get_integration(name: str) -> Integration:
    module, _, attribute = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def install_enabled(config: TracingConfig) -> list[str]:
    from .checks import library_installed

    installed = []
    for name in REGISTRY:
        if not config.integration_enabled(name):
            continue
        if not library_installed(name):
            # Reported by the system check tracing_app.E006; the rest is still traced.
            logger.debug("tracing_app: %s integration skipped, its library is not installed", name)
            continue
        get_integration(name).install(config)
        installed.append(name)
    return installed


def uninstall_all() -> None:
    for target in REGISTRY.values():
        module_name, _, attribute = target.partition(":")
        module = sys.modules.get(module_name)  # never imported: never installed
        if module is not None:
            getattr(module, attribute).uninstall()
