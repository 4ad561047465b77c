"""Celery app of the plain-OpenTelemetry baseline: ``celery -A bench.otel_celery worker``.

The instrumentation's docs instrument in ``worker_process_init``: the batch
processor's thread must start in each prefork child, not in the parent.
"""

import os

from celery.signals import worker_process_init

from bench import otel_setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_untraced")

from project.celery import app  # noqa: E402


@worker_process_init.connect(weak=False)
def _instrument(**kwargs):
    otel_setup.install(django=False)


__all__ = ["app"]
