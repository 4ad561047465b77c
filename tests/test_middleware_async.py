"""TracingMiddleware under Django's async handler (AsyncClient runs the ASGI path in
process) and streaming responses under both handlers. Real servers: tests/e2e/test_asgi.py."""

import asyncio
import logging

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.test import AsyncClient, Client, RequestFactory, override_settings

from tests import async_views
from tracing_app.testing import Expect, assert_trace

pytestmark = [pytest.mark.urls("tests.urls"), pytest.mark.django_db]

OUR_MIDDLEWARE = "tracing_app.TracingMiddleware"
QUERY = Expect("SELECT inventory_stock", kind="CLIENT")


@pytest.fixture(autouse=True)
def stream_events():
    async_views.STREAM_EVENTS.clear()
    yield async_views.STREAM_EVENTS


def aget(path, **kwargs):
    return async_to_sync(AsyncClient().get)(path, **kwargs)


def server_span(captured_spans):
    [span] = [s for s in captured_spans.records() if s.kind == "SERVER"]
    return span


@pytest.mark.parametrize("handler_class", [ASGIHandler, WSGIHandler])
def test_django_adapts_nothing_for_tracing(caplog, handler_class):
    """Django logs (at DEBUG) every middleware it has to wrap for the handler's mode."""
    middleware = [OUR_MIDDLEWARE, "django.middleware.security.SecurityMiddleware",
                  "django.middleware.common.CommonMiddleware"]
    with override_settings(DEBUG=True, MIDDLEWARE=middleware), caplog.at_level(logging.DEBUG, "django.request"):
        handler = handler_class()
    assert [r.getMessage() for r in caplog.records if "adapted" in r.getMessage()] == []
    is_async = handler_class is ASGIHandler
    assert iscoroutinefunction(handler._middleware_chain) == is_async
    # process_view too runs in the handler's own mode: no thread per request.
    assert all(iscoroutinefunction(method) == is_async for method in handler._view_middleware)


def test_async_view_and_its_orm_calls(captured_spans):
    assert aget("/async/view/").status_code == 200
    assert_trace(captured_spans, Expect("GET async/view/", kind="SERVER", error=False, children=[QUERY, QUERY]))


def test_gathered_coroutines_keep_their_own_parents(captured_spans):
    assert aget("/async/gather/").json() == {"found": [False, False, False]}
    assert_trace(captured_spans, Expect("GET async/gather/", kind="SERVER", children=[
        Expect(f"step {index}", children=[QUERY]) for index in range(3)
    ]))


def test_tasks_published_from_async_code_join_the_trace(captured_spans):
    assert aget("/async/publish/").status_code == 200
    assert_trace(captured_spans, Expect("GET async/publish/", kind="SERVER", children=[
        Expect("send async.direct", kind="PRODUCER"),
        Expect("send async.threaded", kind="PRODUCER"),
    ]))


def test_the_business_context_reaches_an_async_view(captured_spans):
    response = aget("/async/view/", headers={"Authorization": "Bearer acme-alice"})
    assert response.status_code == 200
    assert server_span(captured_spans).attributes.get("tenant.id") == "acme"


def test_a_resolver_that_queries_runs_in_a_thread_only_then():
    """In the event loop Django refuses the query (SynchronousOnlyOperation): the middleware
    then runs the resolver in a thread, and the view still gets the business context."""
    from tests.tracing_settings import tracing_settings

    with tracing_settings(BAGGAGE_RESOLVER="tests.async_views.tenant_from_the_database") as spans:
        assert aget("/async/view/").status_code == 200
    server = server_span(spans)
    assert server.attributes["tenant.id"].startswith("tenant-")
    assert_trace(spans, Expect("GET async/view/", children=[QUERY, QUERY, QUERY]))


def consume_sync(path):
    """As a WSGI server does: iterate (Django maps an async stream), then close."""
    response = Client().get(path)
    assert response.streaming
    body = b"".join(response)
    response.close()
    return response, body


def consume_async(path):
    """As Django's ASGI handler does: ``aiter(response)`` (Django maps a sync stream), then close."""
    async def run():
        response = await AsyncClient().get(path)
        assert response.streaming
        body = b"".join([chunk async for chunk in response])
        await response.aclose() if hasattr(response, "aclose") else response.close()
        return response, body
    return async_to_sync(run)()


STREAMED = Expect("GET async/stream/{}/", kind="SERVER", error=False, children=[QUERY] * async_views.CHUNKS)


@pytest.mark.parametrize("consume", [consume_sync, consume_async], ids=["wsgi", "asgi"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stream_is_timed_to_its_end_and_its_queries_are_children(captured_spans, stream_events, consume, kind):
    response, body = consume(f"/async/stream/{kind}/")
    assert body == b"chunk 0\nchunk 1\nchunk 2\n" and stream_events[-1] == "done"
    assert_trace(captured_spans, Expect(STREAMED.name.format(kind), kind="SERVER", error=False,
                                        children=STREAMED.children))
    server = server_span(captured_spans)
    last_query_end = max(s.end_ns for s in captured_spans.records() if s.kind == "CLIENT")
    assert server.end_ns >= last_query_end, "the SERVER span ends after the last chunk was made"
    assert server.attributes["http.response.status_code"] == 200
    assert response["traceresponse"].split("-")[2] == server.span_id


def test_stream_span_stays_open_until_the_stream_is_consumed(captured_spans):
    response = Client().get("/async/stream/sync/")
    assert captured_spans.names() == [], "no chunk was sent yet"
    iterator = iter(response.streaming_content)
    next(iterator)
    assert captured_spans.names() == ["SELECT inventory_stock"]
    list(iterator)
    assert captured_spans.names()[-1] == "GET async/stream/sync/"


def test_stream_closed_before_its_end_says_the_client_disconnected(captured_spans, stream_events):
    """A WSGI server closes the iterable when a write fails: close() before exhaustion."""
    response = Client().get("/async/stream/sync/")
    next(iter(response.streaming_content))
    response.close()
    server = server_span(captured_spans)
    assert server.error and server.status_message == "client disconnected"
    assert server.attributes["error.type"] == "RequestAborted"
    assert stream_events == ["chunk 0"]
    assert_trace(captured_spans, Expect("GET async/stream/sync/", children=[QUERY]))


def test_a_head_answer_closed_unread_is_not_a_disconnect(captured_spans):
    response = Client().head("/async/stream/sync/")
    response.close()
    server = server_span(captured_spans)
    assert server.name == "HEAD async/stream/sync/" and not server.error


def test_sse_stream_cancelled_by_a_disconnect(captured_spans, stream_events):
    """Django's ASGI handler cancels the response task when the client disconnects: the
    CancelledError reaches the stream while it waits for its next event."""
    async def run():
        response = await AsyncClient().get("/async/events/")
        received = []

        async def read():
            async for chunk in response.streaming_content:
                received.append(chunk)
        reader = asyncio.ensure_future(read())
        while len(stream_events) < async_views.CHUNKS:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the stream is now waiting for its next event
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        return received
    received = async_to_sync(run)()
    assert len(received) == async_views.CHUNKS
    server = server_span(captured_spans)
    assert server.error and server.attributes["error.type"] == "RequestAborted"
    assert_trace(captured_spans, Expect("GET async/events/", kind="SERVER", children=[QUERY] * async_views.CHUNKS))


def test_an_exception_while_streaming_is_the_error(captured_spans):
    response = Client(raise_request_exception=False).get("/async/stream/failing/")
    iterator = iter(response.streaming_content)
    assert next(iterator) == b"first\n"
    with pytest.raises(ValueError):
        next(iterator)
    server = server_span(captured_spans)
    assert server.error and server.attributes["error.type"] == "ValueError"
    assert [name for name, _ in server.events] == ["exception"]


class FileWrapper:
    """A WSGI server's ``wsgi.file_wrapper`` (sendfile): it closes the file when sent."""

    def __init__(self, filelike, block_size=8192):
        self.filelike = filelike

    def close(self):
        self.filelike.close()


def test_file_response_keeps_sendfile_and_ends_at_close(captured_spans):
    environ = RequestFactory()._base_environ(PATH_INFO="/async/download/", **{"wsgi.file_wrapper": FileWrapper})
    result = WSGIHandler()(environ, lambda status, headers: None)
    assert isinstance(result, FileWrapper), "the server still gets the file itself"
    assert captured_spans.names() == [], "not sent yet"
    assert len(result.filelike.read()) == 64 * 1024
    result.close()
    server = server_span(captured_spans)
    assert server.name == "GET async/download/" and not server.error
