from __future__ import annotations

import logging

from django.apps import AppConfig

logger = logging.getLogger("tracing_app")


class TracingAppConfig(AppConfig):
    name = "tracing_app"
    label = "tracing_app"
    verbose_name = "Tracing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tracing_app import checks  # noqa: F401  (registers the system checks)
        from tracing_app.lifecycle import start

        start()
