"""The base of every integration: an object that hooks one library into tracing,
installable once and undoable, in the spirit of OpenTelemetry's ``BaseInstrumentor``.

Each integration uses the host's public extension points (Django middleware and
``connection.execute_wrappers``, Celery signals) and never half-installs: when its
``_install`` raises, ``_uninstall`` runs at once to take back whatever it had
already connected, so ``_uninstall`` must accept a partial install. Every hook an
integration leaves in the host checks ``installed`` when it runs. ``uninstall()`` also
drops an install pending on a module's first import (``on_import``).
"""

from __future__ import annotations

import logging
import threading

from tracing_app.conf import TracingConfig
from tracing_app.integrations import on_import

logger = logging.getLogger(__name__)


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
            try:
                self._install(config)
            except BaseException:
                self._roll_back()
                raise
            self.installed = True
            logger.debug("tracing_app: %s integration installed", self.name)

    def uninstall(self) -> None:
        # Pending on a module's first import (on_import)? Then that import must not install it.
        on_import.cancel(self.name)
        with self._lock:
            if not self.installed:
                return
            self._uninstall()
            self.installed = False

    def _roll_back(self) -> None:
        try:
            self._uninstall()
        except Exception:
            logger.warning("tracing_app: rolling back the %s integration's failed install failed too; "
                           "some of its hooks may stay connected", self.name, exc_info=True)

    def _install(self, config: TracingConfig) -> None:
        raise NotImplementedError

    def _uninstall(self) -> None:
        raise NotImplementedError
