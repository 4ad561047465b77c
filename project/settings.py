"""Settings of the demo shop. Service addresses come from the environment:

DATABASE_URL          postgres://user@host:5432/name or sqlite:///path (default: local PostgreSQL)
CELERY_BROKER_URL     amqp://guest:guest@host:5672// (default: local RabbitMQ), redis://host:6379/0,
                      or filesystem:// for the embedded demo: a broker that needs no server
CELERY_BROKER_KEY_PREFIX  with Redis: a prefix for every key (several stacks on one Redis)
CELERY_RESULT_BACKEND django-db (default) or redis://host:6379/1
CELERY_BROKER_FOLDER  where filesystem:// keeps its messages (default .demo/broker)
PRICING_LISTEN        host:port the pricing gRPC server listens on (default 0.0.0.0:50051)
PRICING_TARGET        host:port web and worker call pricing at (default 127.0.0.1:50051)
PRICING_TIMEOUT       seconds a pricing call may take (default 2)
ORDER_WEBHOOK_URL     when set, the worker POSTs each reserved/rejected order there
INVENTORY_URL         base URL of the stock API the quote view asks (default http://127.0.0.1:8000, the web itself)
REDIS_CACHE_URL       redis://host:6379/1: Django's cache in Redis (default: in process memory)
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
    "apps.notifications",
    "django_celery_results",
    "apps.pricing",
]

MIDDLEWARE = [
    "tracing_app.TracingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "project.auth.ApiKeyMiddleware",
]

# Demo accounts (project/auth.py). The tracing resolver puts only the ids into baggage.
DEMO_API_KEYS = {
    "acme-alice": {"user": "101", "username": "alice", "email": "alice@acme.example", "tenant": "acme"},
    "globex-bob": {"user": "202", "username": "bob", "email": "bob@globex.example", "tenant": "globex"},
}

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

# Under ASGI (project/asgi.py sets WEB_INTERFACE) sync code runs in a new thread per
# request, and a persistent connection per thread would pile up: as Django's docs say,
# no persistent connections there, and PostgreSQL's pool (psycopg_pool) instead.
ASGI = os.environ.get("WEB_INTERFACE", "").strip().lower() == "asgi"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop"),
        conn_max_age=0 if ASGI else 60,
    )
}
if ASGI and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": 4, "timeout": 30}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded demo: web and worker processes write one SQLite file. WAL lets
    # readers run beside the writer; IMMEDIATE takes the write lock at BEGIN, so a
    # second writer waits (up to timeout) instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "shop")
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: one file per message, headers included, in a
    # folder every process shares. It creates its control folder but not this one.
    from project.broker import use_for_filesystem_urls

    use_for_filesystem_urls()  # whole message files only: see project/broker.py
    _broker_folder = Path(os.environ.get("CELERY_BROKER_FOLDER") or BASE_DIR / ".demo" / "broker")
    (_broker_folder / "messages").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_folder / "messages"),
        "data_folder_out": str(_broker_folder / "messages"),
        "control_folder": str(_broker_folder / "control"),
        "polling_interval": 0.1,
    }
    # Celery's loop for polling transports waits up to 2 s in drain_events while the
    # worker's prefetch is full; with one message of headroom the next task is
    # already there when a pool process frees up.
    CELERY_WORKER_PREFETCH_MULTIPLIER = 4
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Celery over Redis (`pip install django-tracing-app[redis]`). A key prefix of
    # its own when several deployments (or test runs) share one Redis database.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": os.environ.get("CELERY_BROKER_KEY_PREFIX", "")}
# Keep Django's LOGGING (with trace ids) in the worker instead of Celery's own handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Results only where a task asks for them (chords do); the shop's tasks store none.
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "django-db")  # or redis://host:6379/1
if CELERY_RESULT_BACKEND.startswith(("redis://", "rediss://")):
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": os.environ.get("CELERY_BROKER_KEY_PREFIX", "")}
CELERY_TASK_IGNORE_RESULT = True
# One result backend object per process, not per thread: under ASGI every request runs in
# a thread of its own, and Celery builds a thread's backend (scanning package entry points)
# at its first send_task, a third of an ASGI worker's time in bench.asgi_overhead. Both
# backends here are safe to share (django-db uses Django's per-thread connections, redis a pool).
CELERY_RESULT_BACKEND_THREAD_SAFE = True
# celery beat (`celery -A project beat`): one periodic task, each run its own trace
# named after its entry. Pending orders older than STALE_ORDER_SECONDS are rejected.
STALE_ORDER_SECONDS = int(os.environ.get("STALE_ORDER_SECONDS", "900"))
CELERY_BEAT_SCHEDULE = {
    "reject-stale-orders": {
        "task": "inventory.reject_stale_orders",
        "schedule": float(os.environ.get("STALE_ORDER_CHECK_INTERVAL", "60")),  # seconds
    },
}

# order.* events: written to tracing_app's outbox with the order, published by
# `manage.py relay_outbox`, consumed by `manage.py consume_events` (apps.notifications).
EVENTS_BROKER_URL = os.environ.get("EVENTS_BROKER_URL", CELERY_BROKER_URL)
EVENTS_BROKER_TRANSPORT_OPTIONS = globals().get("CELERY_BROKER_TRANSPORT_OPTIONS", {}) \
    if EVENTS_BROKER_URL == CELERY_BROKER_URL else {}
EVENTS_EXCHANGE = os.environ.get("EVENTS_EXCHANGE", "shop.events")
NOTIFICATIONS_QUEUE = os.environ.get("NOTIFICATIONS_QUEUE", "notifications")

# Pricing gRPC service (apps/pricing) and the outgoing order webhook.
PRICING_LISTEN = os.environ.get("PRICING_LISTEN", "0.0.0.0:50051")
PRICING_TARGET = os.environ.get("PRICING_TARGET", "127.0.0.1:50051")
PRICING_TIMEOUT = float(os.environ.get("PRICING_TIMEOUT", "2"))
ORDER_WEBHOOK_URL = os.environ.get("ORDER_WEBHOOK_URL", "")
# GET /api/orders/<id>/quote asks stock levels over HTTP, as if inventory were another service.
INVENTORY_URL = os.environ.get("INVENTORY_URL", "http://127.0.0.1:8000").rstrip("/")

TRACING = {
    "SERVICE_NAME": "shop-web",
    # Without these the worker would be shop-web-worker, beat shop-web-beat, commands shop-web-command.
    "SERVICE_NAMES": {"worker": "shop-worker", "beat": "shop-beat", "command": "shop-manage"},
    # The demo's own servers: each gRPC call and each consumed event is a trace, the run is not one.
    "COMMANDS_WITHOUT_SPAN": ["runserver", "testserver", "relay_outbox", "test", "serve_pricing", "consume_events"],
    "SERVICE_VERSION": "0.1.0",
    "ENVIRONMENT": os.environ.get("DEPLOYMENT_ENVIRONMENT", "dev"),
    "OTLP_ENDPOINT": "http://localhost:4318",
    "EXCLUDED_URLS": [r"^/healthz$"],
    # The demo needs these libraries: `manage.py check` says so if one is missing.
    "INTEGRATIONS": {"grpc": True, "http_client": True, "httpx": True},
    # Product prices are cached by sku (apps/pricing/views.py): not personal, so the key may be recorded.
    "RECORD_CACHE_KEYS": ["product-price:*"],
}

# Product prices are cached (apps/pricing/views.py): in Redis when REDIS_CACHE_URL is set
# (redis://host:6379/1), else in each process's memory.
CACHES = {"default": (
    {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["REDIS_CACHE_URL"]}
    if os.environ.get("REDIS_CACHE_URL") else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
)}

# Every line names its service, trace and span (tracing_app.TextFormatter): paste a trace_id
# into Jaeger's search. LOG_FORMAT=json writes JSON lines instead.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"()": "tracing_app.TextFormatter"},
        "json": {"()": "tracing_app.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": os.environ.get("LOG_FORMAT", "text")},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
