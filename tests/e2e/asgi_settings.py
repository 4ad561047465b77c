"""The demo's settings with the async and streaming test views (tests/async_views.py)
served beside the demo's URLs, for the web processes of tests/e2e/test_asgi.py."""

from project.settings import *  # noqa: F403

ROOT_URLCONF = "tests.e2e.asgi_urls"
