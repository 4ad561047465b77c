"""Where a request's tracing time goes: ``python -m bench.profile_request [MODE] [--requests N]``.

Runs the demo's POST + GET pair ``N`` times in this process through Django's
test client (the whole middleware chain, real PostgreSQL and RabbitMQ) under
pyinstrument, in one of the request benchmark's modes, and prints the profile.
Also prints the in-process time per pair, to compare modes quickly.
Not part of the measured benchmarks: a tool for finding waste.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from tests.e2e.stack import BROKER_URL, Database, RabbitBroker, run_id

from .harness import Sink
from .request_overhead import modes


def main(argv: list[str] | None = None) -> None:
    names = {mode.name.split()[0] + (mode.name.split()[1] if " " in mode.name else ""): mode for mode in modes()}
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="sampled100%", choices=sorted(names))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--no-profile", action="store_true", help="time only")
    args = parser.parse_args(argv)
    mode = names[args.mode]
    database = Database(f"bench_{run_id()}").create()
    sink = Sink()
    queue = f"bench-{run_id()}"
    os.environ.update({"DJANGO_SETTINGS_MODULE": mode.settings, "DATABASE_URL": database.url,
                       "CELERY_BROKER_URL": BROKER_URL, "CELERY_TASK_DEFAULT_QUEUE": queue,
                       "OTEL_SERVICE_NAME": "bench-profile", "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
                       **mode.env})
    try:
        if mode.app == "bench.otel_wsgi":
            from bench import otel_wsgi  # noqa: F401  (instruments, then sets Django up)
        import django

        django.setup()
        from django.core.management import call_command
        from django.test import Client

        call_command("migrate", verbosity=0)
        client = Client()
        body = json.dumps({"sku": "widget", "quantity": 1})

        def pairs(count: int) -> float:
            started = time.process_time()
            for _ in range(count):
                order = client.post("/api/orders/", body, content_type="application/json").json()
                client.get(f"/api/orders/{order['id']}/")
            return (time.process_time() - started) / count

        pairs(200)
        if args.no_profile:
            print(f"{mode.name}: {pairs(args.requests) * 1e6:.0f} µs CPU per POST+GET pair", file=sys.stderr)
            return
        from pyinstrument import Profiler

        with Profiler(interval=0.0002) as profiler:
            per_pair = pairs(args.requests)
        profiler.print(show_all=False)
        print(f"{mode.name}: {per_pair * 1e6:.0f} µs CPU per POST+GET pair (profiled)", file=sys.stderr)
    finally:
        from django.db import connections

        connections.close_all()
        sink.stop()
        database.drop()
        RabbitBroker().cleanup(queue)


if __name__ == "__main__":
    main()
