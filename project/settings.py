"""Settings of the demo shop. Service addresses come from the environment:

DATABASE_URL       postgres://user@host:5432/name or sqlite:///path (default: local PostgreSQL)
CELERY_BROKER_URL  amqp://guest:guest@host:5672// (default: local RabbitMQ)
OTEL_*             the standard OpenTelemetry variables override TRACING below
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",")

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "tracing_app",
    "apps.inventory",
    "apps.orders",
]

MIDDLEWARE = [
    "tracing_app.middleware.TracingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop"),
        conn_max_age=60,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "shop")
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

TRACING = {
    "SERVICE_NAME": "shop-web",
    "SERVICE_VERSION": "0.1.0",
    "ENVIRONMENT": os.environ.get("DEPLOYMENT_ENVIRONMENT", "dev"),
    "OTLP_ENDPOINT": "http://localhost:4318",
    "EXCLUDED_URLS": [r"^/healthz$"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
