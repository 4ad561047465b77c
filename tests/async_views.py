"""Async views and streaming responses for the middleware's async and streaming tests.

Each chunk of a stream runs a query, so the tests see where spans made while
streaming land. ``STREAM_EVENTS`` lets a test see how far a stream got.
"""

import asyncio
import os
import tempfile
import time

from asgiref.sync import sync_to_async
from django.http import FileResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

from apps.inventory.models import Stock
from project.celery import app as celery_app
from tracing_app import get_tracer

CHUNKS = 3
STREAM_EVENTS: list[str] = []


async def async_view(request):
    count = await Stock.objects.acount()  # Django's async ORM: sync_to_async inside
    skus = await sync_to_async(list)(Stock.objects.values_list("sku", flat=True)[:1])
    return JsonResponse({"count": count, "skus": skus})


async def gathered(request):
    async def step(index):
        with get_tracer().start_as_current_span(f"step {index}"):
            await asyncio.sleep(0)  # let the other steps run between start and query
            return await Stock.objects.filter(sku=f"sku-{index}").aexists()
    found = await asyncio.gather(*(step(index) for index in range(3)))
    return JsonResponse({"found": found})


async def publishes(request):
    # From the event loop directly (kombu's in-memory transport does not block), and
    # through a thread, as code that must not block the loop would.
    celery_app.send_task("async.direct", ignore_result=True)
    await sync_to_async(celery_app.send_task)("async.threaded", ignore_result=True)
    return JsonResponse({"published": 2})


def tenant_from_the_database(request):
    """A business-context resolver that queries (as a lazy ``request.user`` would)."""
    return {"tenant.id": f"tenant-{Stock.objects.count()}"}


def sync_chunks(count=CHUNKS):
    for index in range(count):
        Stock.objects.filter(sku=f"chunk-{index}").exists()
        STREAM_EVENTS.append(f"chunk {index}")
        yield f"chunk {index}\n"
    STREAM_EVENTS.append("done")


async def async_chunks(count=CHUNKS):
    for index in range(count):
        await Stock.objects.filter(sku=f"chunk-{index}").aexists()
        STREAM_EVENTS.append(f"chunk {index}")
        yield f"chunk {index}\n"
    STREAM_EVENTS.append("done")


def failing_chunks():
    yield "first\n"
    raise ValueError("the stream broke")


def sync_stream(request):
    return StreamingHttpResponse(sync_chunks(int(request.GET.get("chunks", CHUNKS))), content_type="text/plain")


async def async_stream(request):
    return StreamingHttpResponse(async_chunks(int(request.GET.get("chunks", CHUNKS))), content_type="text/plain")


def failing_stream(request):
    return StreamingHttpResponse(failing_chunks(), content_type="text/plain")


async def events(request):
    """Server-sent events: one event per query (``?events=``, 3 by default), then a pause
    as a live stream would have."""
    quick = int(request.GET.get("events", CHUNKS))

    async def stream():
        index = 0
        while True:
            await Stock.objects.filter(sku=f"event-{index}").aexists()
            STREAM_EVENTS.append(f"event {index}")
            yield f"id: {index}\nevent: tick\ndata: {index}\n\n"
            index += 1
            await asyncio.sleep(0.05 if index < quick else 3600)
    return StreamingHttpResponse(stream(), content_type="text/event-stream")


def sync_events(request):
    """Server-sent events from a sync generator (a WSGI worker): ``?events=`` events, one
    query each, then a keep-alive comment every 0.2 s, as live streams send, so that a
    write fails once the client has gone; bounded at one minute."""
    quick = int(request.GET.get("events", CHUNKS))

    def stream():
        for index in range(quick):
            Stock.objects.filter(sku=f"event-{index}").exists()
            yield f"id: {index}\nevent: tick\ndata: {index}\n\n"
        for _ in range(300):
            time.sleep(0.2)
            yield ": keep-alive\n\n"
    return StreamingHttpResponse(stream(), content_type="text/event-stream")


def this_file(request):
    """A ``FileResponse`` of a file on disk (this module)."""
    return FileResponse(open(__file__, "rb"), content_type="text/x-python")  # noqa: SIM115 (the response closes it)


def download(request):
    handle = tempfile.TemporaryFile()
    handle.write(os.urandom(64 * 1024))
    handle.seek(0)
    return FileResponse(handle, filename="report.bin")


def big_file(request):
    """A ``FileResponse`` of a 32 MiB file on disk (unlinked: gone when closed): more than
    a client that stops reading lets the server send."""
    handle = tempfile.TemporaryFile()
    handle.write(b"x" * (32 * 1024 * 1024))
    handle.seek(0)
    return FileResponse(handle, content_type="application/octet-stream")


urlpatterns = [
    path("view/", async_view),
    path("gather/", gathered),
    path("publish/", publishes),
    path("stream/sync/", sync_stream),
    path("stream/async/", async_stream),
    path("stream/failing/", failing_stream),
    path("events/", events),
    path("events/sync/", sync_events),
    path("file/", this_file),
    path("file/big/", big_file),
    path("download/", download),
]
