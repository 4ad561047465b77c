"""The demo's Celery app, configured from Django settings (namespace CELERY).

Tracing needs nothing here: tracing_app's Celery integration is installed by
AppConfig.ready(), which the worker runs when Celery's Django fix-up calls
django.setup(). The worker is named shop-worker by TRACING["SERVICE_NAMES"] in settings.py.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
