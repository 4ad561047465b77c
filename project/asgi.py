"""The demo's ASGI application: ``uvicorn project.asgi:application``, or gunicorn with the
uvicorn worker (``WEB_INTERFACE=asgi``, see gunicorn.conf.py).

Tracing needs nothing here: TracingMiddleware is sync- and async-capable, so Django
runs it in the event loop with no thread of its own.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("WEB_INTERFACE", "asgi")  # settings: no persistent database connections

application = get_asgi_application()
