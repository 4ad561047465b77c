"""Every kind of streamed answer under a real uvicorn process and gunicorn's sync (WSGI)
worker, exported over OTLP: a stream of nine chunks with a query each (sync and async
generator), a ``FileResponse`` of a file on disk, a stream that raises after its first
chunk, HEAD on a streaming view, and a server-sent-events stream the client cuts after
two events. Each SERVER span ends once its stream is over, with the chunks' queries as
its children."""

from __future__ import annotations

import socket
import urllib.parse
from pathlib import Path

import pytest

from tests import async_views
from tracing_app.testing import Expect, assert_trace

from .test_asgi import SETTINGS, traces_by_root

QUERY = Expect("SELECT inventory_stock", kind="CLIENT", service="shop-web")
NINE = 9


def raw_get(url: str, method: str = "GET", events: int | None = None) -> bytes:
    """Send one request as an outside client would and read the answer until the server
    closes (or, with ``events``, until that many server-sent events arrived, then hang up)."""
    parts = urllib.parse.urlsplit(url)
    received = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as connection:
        connection.sendall(f"{method} {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                           f"Connection: close\r\n\r\n".encode())
        while events is None or received.count(b"data: ") < events:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                assert events is None, f"the server closed the stream early: {received!r}"
                break
            received += chunk
    return received


def start(stack, server: str):
    if server == "gunicorn-wsgi":
        return stack.start_web(DJANGO_SETTINGS_MODULE=SETTINGS)
    return stack.start_asgi_web(server, DJANGO_SETTINGS_MODULE=SETTINGS)


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-wsgi"])
def test_every_kind_of_stream_is_timed_to_its_end_with_its_queries_as_children(stack, otlp, server):
    web = start(stack, server)
    for kind in ("sync", "async"):
        status, _, body = web.request("GET", f"/async/stream/{kind}/?chunks={NINE}")
        assert (status, body) == (200, "".join(f"chunk {i}\n" for i in range(NINE)).encode())
    status, _, body = web.request("GET", "/async/file/")
    assert (status, body) == (200, Path(async_views.__file__).read_bytes())
    failed = raw_get(web.url + "/async/stream/failing/")
    # (Under ASGI Django reads a sync iterator whole before sending: the client gets no body.)
    assert b"\r\n0\r\n\r\n" not in failed, "the client must not see a complete stream"
    status, _, body = web.request("HEAD", "/async/stream/sync/")
    assert (status, body) == (200, b"")
    events_path = "/async/events/sync/" if server == "gunicorn-wsgi" else "/async/events/"
    received = raw_get(web.url + events_path + "?events=2", events=2)
    assert b"text/event-stream" in received

    streams = [Expect(f"GET async/stream/{kind}/", kind="SERVER", service="shop-web", error=False,
                      attributes={"http.response.status_code": 200}, children=[QUERY] * NINE)
               for kind in ("sync", "async")]
    file = Expect("GET async/file/", kind="SERVER", error=False, attributes={"http.response.status_code": 200})
    failing = Expect("GET async/stream/failing/", kind="SERVER", error=True, attributes={"error.type": "ValueError"})
    head = Expect("HEAD async/stream/sync/", kind="SERVER", error=False,
                  attributes={"http.response.status_code": 200})
    cut = Expect(f"GET {events_path.lstrip('/')}", kind="SERVER", error=True,
                 attributes={"error.type": "RequestAborted", "http.response.status_code": 200},
                 children=[QUERY] * 2)
    wanted = [*streams, file, failing, head, cut]
    names = {expect.name for expect in wanted}
    spans = otlp.wait_for(lambda spans: names <= {s.name for s in spans if s.kind == "SERVER"})
    traces = traces_by_root(spans)
    for expect in (*streams, file, failing, cut):
        assert_trace(traces[expect.name], expect)
    # HEAD: the body is not sent; whatever the server pulled of it ran in the request.
    assert_trace([s for s in traces[head.name] if s.kind == "SERVER"], head)
    assert {s.name for s in traces[head.name] if s.kind != "SERVER"} <= {QUERY.name}
    by_name = {s.name: s for s in spans if s.kind == "SERVER"}
    for expect in streams:
        server_span = by_name[expect.name]
        assert server_span.end_ns >= max(s.end_ns for s in traces[expect.name] if s is not server_span)
    assert by_name[cut.name].status_message == "client disconnected"


def read_some_then_disconnect(url: str) -> bytes:
    """GET ``url``, read the first bytes of the answer, then hang up."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as connection:
        connection.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        received = connection.recv(65536)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return received


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-wsgi"])
def test_a_file_download_cut_by_the_client_still_ends_its_span(stack, otlp, server):
    """Under ASGI Django closes no response whose client went away, so a span ended only by
    the response's close() would never end; under WSGI the server closes it."""
    web = start(stack, server)
    assert read_some_then_disconnect(web.url + "/async/file/big/").startswith(b"HTTP/1.1 200")
    spans = otlp.wait_for(lambda spans: any(s.name == "GET async/file/big/" for s in spans))
    [span] = [s for s in spans if s.name == "GET async/file/big/"]
    assert span.kind == "SERVER" and span.attributes["http.response.status_code"] == 200
