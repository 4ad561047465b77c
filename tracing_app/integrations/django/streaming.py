"""Streaming responses: the request's context while each chunk is made, and the
SERVER span's end when the stream has been sent.

A ``StreamingHttpResponse`` (or ``FileResponse``) leaves the middleware before
its body exists: the server pulls chunks afterwards. So the middleware swaps the
response's ``streaming_content`` for one of the iterators below, which attach the
request's context around every pull (a query made by the generator is a child of
the request) and end the span, once, at the first of:

- exhaustion: the last chunk has been handed to the server;
- an exception from the user's iterator: recorded as the error;
- ``asyncio.CancelledError`` inside a pull: Django's ASGI handler cancels the
  response when the client disconnects;
- ``close()`` before exhaustion: a WSGI server closes the iterable when a write
  fails (client gone), and both Django handlers close the response after sending.

``close`` reaches us because Django registers the ``close`` of whatever is
assigned to ``streaming_content`` among the response's closers
(``HttpResponseBase.close``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from opentelemetry import context
from opentelemetry.context import Context

from tracing_app import safety

# The outcome handed to ``end``: None (sent in full), an exception, or this marker.
DISCONNECTED = "client disconnected"

Outcome = BaseException | str | None


class _Ending:
    """Calls ``end`` at most once, whichever way the stream finishes first. ``head``: the
    answer to a HEAD request, whose body a server may close unread."""

    __slots__ = ("_context", "_end", "_head")

    def __init__(self, ctx: Context, end: Callable[[Outcome], None] | None, head: bool = False) -> None:
        self._context = ctx
        self._end = end
        self._head = head

    def _finish(self, outcome: Outcome) -> None:
        end, self._end = self._end, None
        if end is not None:
            end(outcome)

    def close(self) -> None:
        self._at_close(None if self._head else DISCONNECTED)

    def sent(self) -> None:
        self._at_close(None)

    def _at_close(self, outcome: Outcome) -> None:
        try:
            self._finish(outcome)
        except Exception as exc:  # only under RAISE_ERRORS: Django's close() would swallow it
            safety.swallowed_by_host("ending the request span at close", exc)


class TracedStream(_Ending):
    """A sync ``streaming_content`` iterator run in the request's context."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Iterator[Any], ctx: Context, end: Callable[[Outcome], None] | None,
                 head: bool = False) -> None:
        super().__init__(ctx, end, head)
        self._inner = inner

    def __iter__(self) -> TracedStream:
        return self

    def __next__(self) -> Any:
        token = context.attach(self._context)
        try:
            return next(self._inner)
        except StopIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        finally:
            context.detach(token)


class TracedAsyncStream(_Ending):
    """An async ``streaming_content`` iterator run in the request's context."""

    __slots__ = ("_inner",)

    def __init__(self, inner: AsyncIterator[Any], ctx: Context, end: Callable[[Outcome], None] | None,
                 head: bool = False) -> None:
        super().__init__(ctx, end, head)
        self._inner = inner

    def __aiter__(self) -> TracedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        token = context.attach(self._context)
        try:
            return await self._inner.__anext__()
        except StopAsyncIteration:
            self._finish(None)
            raise
        except asyncio.CancelledError:
            self._finish(DISCONNECTED)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        finally:
            context.detach(token)


def trace_stream(response: Any, ctx: Context, end: Callable[[Outcome], None] | None, head: bool = False) -> None:
    """Make ``response`` (streaming) run its chunks in ``ctx`` and call ``end`` when sent.

    A ``FileResponse`` whose file a WSGI server may send with ``wsgi.file_wrapper``
    (sendfile) keeps its file: replacing its content would lose that. Reading a file
    makes no spans, so it only needs the end, at ``close()`` (the server closes the
    file wrapper, which Django points at ``response.close``); whether the client got
    all of it is not known there."""
    if getattr(response, "file_to_stream", None) is not None:
        if end is not None:
            ending = _Ending(ctx, end)
            # Django's own list of callbacks that response.close() runs; it has no public hook.
            response._resource_closers.append(ending.sent)
        return
    if response.is_async:
        response.streaming_content = TracedAsyncStream(response.streaming_content, ctx, end, head)
    else:
        response.streaming_content = TracedStream(response.streaming_content, ctx, end, head)
