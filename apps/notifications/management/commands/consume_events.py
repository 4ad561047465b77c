"""``python manage.py consume_events``: the notifications service's long-running consumer."""

from __future__ import annotations

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from kombu import Connection

from tracing_app import force_flush

from ...consumer import EventConsumer


class Command(BaseCommand):
    help = "Consume order events from RabbitMQ and write notifications."

    def handle(self, *args: Any, **options: Any) -> None:
        with Connection(settings.EVENTS_BROKER_URL,
                        transport_options=settings.EVENTS_BROKER_TRANSPORT_OPTIONS) as connection:
            consumer = EventConsumer(connection)

            def stop(*_: Any) -> None:
                consumer.should_stop = True

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            try:
                consumer.run()
            finally:
                force_flush()
