"""Test settings: the demo's settings with tracing captured in memory.

Service URLs come from the environment, like the demo's (DATABASE_URL,
CELERY_BROKER_URL). Without DATABASE_URL, the database ``tests.e2e.stack.backends()``
chose is used: the local PostgreSQL when reachable, SQLite otherwise. The test database gets a per-run name so that two
runs on one PostgreSQL never collide.
"""

import os

from project.settings import *  # noqa: F403
from project.settings import DATABASES, TRACING
from tests.e2e.stack import backends

if "DATABASE_URL" not in os.environ and backends().database == "sqlite":
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_shop_{os.getpid()}"

TRACING = {**TRACING, "EXPORTER": "none"}

# In-process tests publish to kombu's in-memory transport; the end-to-end tests
# start real processes against RabbitMQ with their own settings.
CELERY_BROKER_URL = "memory://"

# In-process tests never reach a pricing server by accident (another run's, on the
# default port): a socket path that does not exist fails at once with UNAVAILABLE.
# Tests that need pricing start one (tests/e2e) or replace the client.
PRICING_TARGET = "unix:/nonexistent/tracing-app-tests-pricing.sock"
