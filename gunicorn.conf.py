"""gunicorn settings for the demo web service. Values come from the environment."""

import os

# Flush each worker's spans when it exits (recycled or stopped), and warn at
# start-up if a worker has no working exporter. See tracing_app/integrations/gunicorn.py.
from tracing_app.integrations.gunicorn import post_worker_init, worker_exit  # noqa: F401

# WEB_INTERFACE=asgi serves project.asgi with the uvicorn worker (async views and streams
# in an event loop); wsgi (the default) serves project.wsgi with gunicorn's sync worker.
WEB_INTERFACES = {
    "wsgi": ("project.wsgi:application", "sync"),
    "asgi": ("project.asgi:application", "uvicorn_worker.UvicornWorker"),
}
_interface = os.environ.get("WEB_INTERFACE", "wsgi").strip().lower() or "wsgi"
if _interface not in WEB_INTERFACES:
    raise SystemExit(f"gunicorn.conf.py: WEB_INTERFACE must be one of {sorted(WEB_INTERFACES)}, not {_interface!r}")
wsgi_app, worker_class = WEB_INTERFACES[_interface]

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
# Recycle workers now and then, as production deployments do; worker_exit
# flushes a worker's spans before it exits.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "50"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
accesslog = "-"
