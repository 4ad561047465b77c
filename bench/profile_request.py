"""Where a request's tracing time goes: ``python -m bench.profile_request [MODE] [--requests N] [--calls]``.

Runs the demo's POST + GET + cached price GET ``N`` times in this process through Django's
test client (the whole middleware chain, real PostgreSQL and RabbitMQ) under
pyinstrument, in one of the request benchmark's modes, and prints the profile.
Also prints the in-process time per round of the three, to compare modes quickly.

``--calls`` counts instead of sampling: every Python and C call made by tracing
per POST+GET+price, charged to the tracing_app function that the host (Django, the
view, kombu, grpc) called, whatever OpenTelemetry code it ran below. Exact and
repeatable, unlike time on a shared machine; in the request path each call costs
about a microsecond, far more than in a hot loop, so fewer calls is what helps.
Not part of the measured benchmarks: a tool for finding waste.

``--asgi`` sends the same pairs through Django's async handler (``AsyncClient``: the
middleware chain awaited in an event loop, sync views in ``sync_to_async`` threads, as
under uvicorn); ``--calls`` then counts in every thread.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from tests.e2e.stack import BROKER_URL, Database, RabbitBroker, run_id

from .harness import Sink
from .loadgen import PRICE_PATH
from .request_overhead import modes


def main(argv: list[str] | None = None) -> None:
    names = {mode.name.split()[0] + (mode.name.split()[1] if " " in mode.name else ""): mode for mode in modes()}
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="sampled100%", choices=sorted(names))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--no-profile", action="store_true", help="time only")
    parser.add_argument("--calls", action="store_true", help="count tracing's calls per pair instead")
    parser.add_argument("--asgi", action="store_true", help="through Django's async handler (AsyncClient)")
    args = parser.parse_args(argv)
    if args.asgi:
        os.environ["WEB_INTERFACE"] = "asgi"  # as project/asgi.py: no persistent database connections
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
        from django.test import AsyncClient, Client

        call_command("migrate", verbosity=0)
        # No pricing service runs here: the price is in the cache already, as it is for
        # nearly every request of the benchmark (a hit of get_or_set).
        from django.core.cache import cache

        from apps.pricing.views import price_cache_key

        cache.set(price_cache_key("widget"), {"sku": "widget", "unit_price_cents": 1250, "currency": "EUR"}, None)
        body = json.dumps({"sku": "widget", "quantity": 1})

        def pairs(count: int) -> float:
            started = time.process_time()  # all threads of the process
            if args.asgi:
                asyncio.run(async_pairs(AsyncClient(), body, count))
            else:
                client = Client()
                for _ in range(count):
                    order = client.post("/api/orders/", body, content_type="application/json").json()
                    client.get(f"/api/orders/{order['id']}/")
                    client.get(PRICE_PATH)
            return (time.process_time() - started) / count

        pairs(200)
        if args.calls:
            print_tracing_calls(pairs, args.requests)
            return
        if args.no_profile:
            print(f"{mode.name}: {pairs(args.requests) * 1e6:.0f} µs CPU per POST+GET+price", file=sys.stderr)
            return
        from pyinstrument import Profiler

        with Profiler(interval=0.0002) as profiler:
            per_pair = pairs(args.requests)
        profiler.print(show_all=False)
        print(f"{mode.name}: {per_pair * 1e6:.0f} µs CPU per POST+GET+price (profiled)", file=sys.stderr)
    finally:
        from django.db import connections

        connections.close_all()
        sink.stop()
        database.drop()
        RabbitBroker().cleanup(queue)


async def async_pairs(client: object, body: str, count: int) -> None:
    from asgiref.sync import ThreadSensitiveContext, sync_to_async
    from django.db import connections

    # The test client leaves connections open (it disconnects close_old_connections): give
    # each request thread's connection back to the pool, as request_finished does under ASGI.
    close = sync_to_async(connections.close_all)
    for _ in range(count):
        # As Django's ASGIHandler: each request's sync code runs in a thread of its own.
        async with ThreadSensitiveContext():
            order = (await client.post("/api/orders/", body, content_type="application/json")).json()
            await close()
        async with ThreadSensitiveContext():
            await client.get(f"/api/orders/{order['id']}/")
            await close()
        async with ThreadSensitiveContext():
            await client.get(PRICE_PATH)
            await close()


def print_tracing_calls(pairs: Callable[[int], float], count: int) -> None:
    counts: collections.Counter[str] = collections.Counter()
    stacks = threading.local()  # per thread: for each active Python frame, the tracing_app entry it runs for

    def count_call(frame: FrameType, event: str, arg: object) -> None:
        owners = getattr(stacks, "owners", None)
        if owners is None:
            owners = stacks.owners = []
        if event == "call":
            path, parent = frame.f_code.co_filename, owners[-1] if owners else None
            if f"{os.sep}tracing_app{os.sep}" in path:
                owner = parent or f"{Path(path).name}:{frame.f_code.co_qualname}"
            elif f"{os.sep}opentelemetry{os.sep}" in path or path.startswith("<frozen abc"):
                owner = parent  # OpenTelemetry code that tracing called
            else:
                owner = None  # host code: not tracing's, even below a tracing frame
            owners.append(owner)
            if owner:
                counts[owner] += 1
        elif event == "return":
            if owners:
                owners.pop()
        elif event == "c_call" and owners and owners[-1]:
            counts[owners[-1]] += 1

    sys.setprofile(count_call)
    threading.setprofile(count_call)  # the sync_to_async threads that run sync views under ASGI
    try:
        pairs(count)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    print(f"tracing's calls per POST+GET+price: {sum(counts.values()) / count:.0f}, by entry point:")
    for owner, calls in counts.most_common():
        print(f"{calls / count:8.1f}  {owner}")


if __name__ == "__main__":
    main()
