"""A request whose answer never comes in time, for every client library we trace: the
caller gets its library's timeout error and the CLIENT span ends as an error named by
that error's type, with no status code."""

from __future__ import annotations

import asyncio
import urllib.request

import aiohttp
import httpx
import pytest
import requests
import urllib3

from tests.test_http_clients import Service, _call_in_task
from tracing_app.testing import Expect, assert_trace

WAIT = 0.5  # seconds the client waits for an answer the server holds back (up to 30 s)


def _requests(url: str) -> int:
    return requests.get(url, timeout=WAIT).status_code


def _httpx(url: str) -> int:
    with httpx.Client(timeout=WAIT) as client:
        return client.get(url).status_code


def _httpx_async(url: str) -> int:
    async def call() -> int:
        async with httpx.AsyncClient(timeout=WAIT) as client:
            return (await client.get(url)).status_code

    return asyncio.run(call())


def _urllib3(url: str) -> int:
    return urllib3.PoolManager(retries=False, timeout=WAIT).request("GET", url).status


def _urllib(url: str) -> int:
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        return response.status


def _aiohttp(url: str) -> int:
    async def call() -> int:
        timeout = aiohttp.ClientTimeout(sock_read=WAIT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            return response.status

    return asyncio.run(call())


CALLS = {"requests": (_requests, requests.Timeout), "httpx": (_httpx, httpx.TimeoutException),
         "httpx-async": (_httpx_async, httpx.TimeoutException), "urllib3": (_urllib3, urllib3.exceptions.TimeoutError),
         "urllib": (_urllib, TimeoutError), "aiohttp": (_aiohttp, asyncio.TimeoutError)}


@pytest.fixture
def service():
    running = Service()
    yield running
    running.stop()


@pytest.mark.parametrize("name", list(CALLS))
def test_an_answer_that_never_comes_in_time_is_an_ended_error_span(name, service, captured_spans):
    call, timeout_error = CALLS[name]
    with pytest.raises(timeout_error):
        _call_in_task(call, service.url("/slow"))
    assert_trace(captured_spans, Expect("task", error=True, children=[Expect("GET", kind="CLIENT", error=True)]))
    [span] = [s for s in captured_spans.records() if s.kind == "CLIENT"]
    assert span.end_ns >= span.start_ns > 0
    assert span.attributes.get("error.type") not in (None, "", "_OTHER"), span.attributes
    assert "http.response.status_code" not in span.attributes
