"""Celery: PRODUCER/CONSUMER spans from Celery's signals (``signals``) and the
worker-process lifecycle that flushes them (``lifecycle``)."""
