"""The web under real ASGI servers (uvicorn, and gunicorn with the uvicorn worker) and
streaming under gunicorn's WSGI worker, exporting real OTLP to a receiver: async views,
streamed responses timed to their end with their queries as children, and a
server-sent-events stream cut by the client."""

from __future__ import annotations

import socket
import urllib.parse

import pytest

from tracing_app.testing import Expect, assert_trace

SETTINGS = "tests.e2e.asgi_settings"  # the demo plus tests/async_views.py under /async/
QUERY = Expect("SELECT inventory_stock", kind="CLIENT", service="shop-web")
CHUNKS = 3


def stream_trace(kind: str) -> Expect:
    return Expect(f"GET async/stream/{kind}/", kind="SERVER", service="shop-web", error=False,
                  attributes={"http.response.status_code": 200}, children=[QUERY] * CHUNKS)


ASYNC_VIEW = Expect("GET async/view/", kind="SERVER", service="shop-web", error=False, children=[QUERY, QUERY])
GATHERED = Expect("GET async/gather/", kind="SERVER", service="shop-web", children=[
    Expect(f"step {index}", kind="INTERNAL", children=[QUERY]) for index in range(3)
])
PUBLISHED = Expect("GET async/publish/", kind="SERVER", service="shop-web", children=[
    Expect("send async.direct", kind="PRODUCER"), Expect("send async.threaded", kind="PRODUCER"),
])
CUT_EVENTS = Expect("GET async/events/", kind="SERVER", service="shop-web", error=True,
                    attributes={"error.type": "RequestAborted", "http.response.status_code": 200},
                    children=[QUERY] * CHUNKS)


def read_events_then_disconnect(url: str, events: int) -> bytes:
    """Open a server-sent-events stream, read ``events`` events, close the connection."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as connection:
        connection.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                           f"Accept: text/event-stream\r\n\r\n".encode())
        received = b""
        while received.count(b"data: ") < events:
            chunk = connection.recv(65536)
            assert chunk, f"the server closed the stream early: {received!r}"
            received += chunk
    return received


def traces_by_root(spans) -> dict[str, list]:
    """Each trace's spans by the name of its root: the span whose parent is not among them
    (the test process's own HTTP client span, when it makes one, is not exported here)."""
    ids = {span.span_id for span in spans}
    roots = {span.trace_id: span.name for span in spans if span.parent_id not in ids}
    grouped: dict[str, list] = {}
    for span in spans:
        grouped.setdefault(roots.get(span.trace_id, "?"), []).append(span)
    return grouped


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_async_views_streams_and_a_cut_event_stream_under_asgi(stack, otlp, server):
    web = stack.start_asgi_web(server, DJANGO_SETTINGS_MODULE=SETTINGS)
    for path in ("/async/view/", "/async/gather/", "/async/publish/"):
        status, _, body = web.request("GET", path)
        assert status == 200, body
    for kind in ("sync", "async"):
        status, headers, body = web.request("GET", f"/async/stream/{kind}/")
        assert (status, body) == (200, b"chunk 0\nchunk 1\nchunk 2\n")
        assert headers["traceresponse"]
    received = read_events_then_disconnect(web.url + "/async/events/", CHUNKS)
    assert b"text/event-stream" in received

    wanted = [ASYNC_VIEW, GATHERED, PUBLISHED, stream_trace("sync"), stream_trace("async"), CUT_EVENTS]
    names = {expect.name for expect in wanted}
    spans = otlp.wait_for(lambda spans: names <= {s.name for s in spans if s.kind == "SERVER"})
    traces = traces_by_root(spans)
    for expect in wanted:
        assert_trace(traces[expect.name], expect)
    for span in spans:
        if span.kind == "SERVER":
            assert span.attributes["network.protocol.version"] == "1.1", span.name
            assert span.attributes["url.scheme"] == "http"
    cut = next(s for s in spans if s.name == CUT_EVENTS.name)
    assert cut.status_message == "client disconnected"


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_database_connections_do_not_pile_up_under_asgi(stack, otlp, server):
    """Sync code under ASGI runs in a new thread per request: with persistent connections
    (the demo's WSGI setting) each request would leave one open. The demo's ASGI settings
    use PostgreSQL's pool instead (at most 4 connections per process)."""
    web = stack.start_asgi_web(server, DJANGO_SETTINGS_MODULE=SETTINGS)
    for _ in range(20):
        assert web.request("GET", "/async/stream/sync/")[0] == 200
        assert web.request("GET", "/api/orders/424242/")[0] == 404
    [(open_connections,)] = stack.database.query(
        "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()")
    assert open_connections <= 4, f"{open_connections} connections left open by 40 requests"


def test_streams_under_wsgi(stack, otlp):
    """gunicorn's sync worker pulls the stream after the middleware has returned; Django
    runs an async stream's iterator to its end in a loop of its own."""
    web = stack.start_web(DJANGO_SETTINGS_MODULE=SETTINGS)
    for kind in ("sync", "async"):
        status, _, body = web.request("GET", f"/async/stream/{kind}/")
        assert (status, body) == (200, b"chunk 0\nchunk 1\nchunk 2\n")
    wanted = [stream_trace("sync"), stream_trace("async")]
    spans = otlp.wait_for(lambda spans: {e.name for e in wanted} <= {s.name for s in spans})
    traces = traces_by_root(spans)
    for expect in wanted:
        assert_trace(traces[expect.name], expect)
