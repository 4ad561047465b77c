"""``python manage.py relay_outbox``: publish pending outbox events to RabbitMQ until stopped."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from tracing_app.conf import get_config
from tracing_app.outbox import DEFAULT_EXCHANGE_TYPE, run_relay
from tracing_app.pipeline.provider import force_flush


class Command(BaseCommand):
    help = "Publish pending tracing_app outbox events to RabbitMQ (SELECT ... FOR UPDATE SKIP LOCKED)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--broker-url", default="", help="AMQP URL; default TRACING['OUTBOX_BROKER_URL'].")
        parser.add_argument("--interval", type=float, default=0.5, help="Seconds between polls when idle.")
        parser.add_argument("--batch-size", type=int, default=100, help="Events locked and published per transaction.")
        parser.add_argument("--exchange-type", default=DEFAULT_EXCHANGE_TYPE, help="Type of exchanges declared.")
        parser.add_argument("--once", action="store_true", help="Publish what is pending, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        broker_url = options["broker_url"] or get_config().outbox_broker_url
        transport_options = {}
        if not broker_url:
            # The Celery broker, with its transport options (the embedded demo's folders).
            broker_url = getattr(settings, "CELERY_BROKER_URL", "") or "amqp://guest:guest@localhost:5672//"
            transport_options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {})
        self.stdout.write(f"relay_outbox: publishing to {broker_url.rpartition('@')[2]}", ending="\n")
        self.stdout.flush()
        try:
            total = run_relay(broker_url, interval=options["interval"], batch_size=options["batch_size"],
                              exchange_type=options["exchange_type"], once=options["once"], stop=stop,
                              transport_options=transport_options)
        finally:
            force_flush()
        self.stdout.write(f"relay_outbox: published {total} event(s)")
