"""``python manage.py serve_pricing``: the pricing gRPC service in its own process.

Its spans carry the service name of this process: run it with
``OTEL_SERVICE_NAME=shop-pricing`` as the worker runs with ``shop-worker``.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

import tracing_app
from apps.pricing.server import build_server


class Command(BaseCommand):
    help = "Serve the pricing gRPC service until SIGTERM or SIGINT."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--listen", default=settings.PRICING_LISTEN,
                            help="host:port to listen on (default: settings.PRICING_LISTEN)")
        parser.add_argument("--workers", type=int, default=8, help="handler threads")

    def handle(self, *args: Any, listen: str, workers: int, **options: Any) -> None:
        server, port = build_server(listen, workers)
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        server.start()
        service = tracing_app.get_config().service_name
        self.stdout.write(f"pricing: serving on {listen.rpartition(':')[0]}:{port} as service {service}", ending="\n")
        self.stdout.flush()
        stopping.wait()
        # Let calls in flight finish, then send their spans before the process exits.
        server.stop(grace=5).wait()
        tracing_app.force_flush()
