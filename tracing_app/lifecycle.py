"""Starting and stopping tracing in a process: what ``AppConfig.ready()`` runs."""

from __future__ import annotations

import logging

from tracing_app.conf import TracingConfig, get_config
from tracing_app.integrations import install_enabled, uninstall_all
from tracing_app.pipeline import provider

logger = logging.getLogger("tracing_app")


def start(config: TracingConfig | None = None) -> list[str]:
    """Build the provider and install the enabled integrations. Idempotent.

    Returns the names of the integrations installed now; one waiting for its library's
    first import is not among them (``integrations.pending_integrations()``). Never raises for
    bad settings: those are reported by ``manage.py check`` and fall back to
    their defaults here, so a typo cannot take the host app down.
    """
    config = config or get_config()
    if config.problems:
        logger.warning(
            "tracing_app: %d TRACING problem(s), defaults used for them; run `manage.py check` for details",
            len(config.problems),
        )
    if not config.enabled:
        logger.debug("tracing_app: tracing disabled, nothing installed")
        return []
    try:
        provider.install_provider(config)
        return install_enabled(config)
    except Exception:
        logger.exception("tracing_app: could not start tracing; the app runs untraced")
        return []


def stop() -> None:
    """Uninstall every integration, drop the installs still waiting for an import, and
    flush; the provider stays registered."""
    uninstall_all()
    provider.force_flush()
