"""A redirect from a host PROPAGATE_TO allows to one it does not: every client library
we trace must not carry the first hop's traceparent/baggage to the second."""

from __future__ import annotations

import asyncio
import urllib.request

import httpx
import pytest
import urllib3

from tests.test_http_clients import CLIENTS, PROPAGATION_HEADERS, Service, _call_in_task
from tests.tracing_settings import tracing_settings


def _httpx(url: str) -> int:
    with httpx.Client(timeout=10, follow_redirects=True) as client:
        return client.get(url).status_code


def _httpx_async(url: str) -> int:
    async def call() -> int:
        async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client:
            return (await client.get(url)).status_code

    return asyncio.run(call())


def _urllib3(url: str) -> int:
    return urllib3.PoolManager(timeout=10).request("GET", url, redirect=True).status


# Each library's call, following redirects (requests, urllib and aiohttp do by default).
FOLLOWING = {name: call for name, (_, call, _) in CLIENTS.items()} | {
    "httpx": _httpx, "httpx-async": _httpx_async, "urllib3": _urllib3}


@pytest.fixture
def services():
    allowed, external = Service(), Service()
    yield allowed, external
    allowed.stop()
    external.stop()


@pytest.mark.parametrize("name", list(FOLLOWING))
def test_a_redirect_to_a_host_outside_propagate_to_gets_no_context(name, services):
    allowed, external = services
    call = FOLLOWING[name]
    target = external.url("/ok", host="localhost")
    with tracing_settings(PROPAGATE_TO=["127.0.0.1"]):
        assert _call_in_task(call, allowed.url("/redirect?to=" + target)) == 200
    [first], [second] = allowed.headers, external.headers
    assert {"traceparent", "baggage"} <= set(first)
    assert not PROPAGATION_HEADERS & set(second), f"context carried over a redirect to {target}"


@pytest.mark.parametrize("name", list(FOLLOWING))
def test_a_redirect_within_propagate_to_keeps_the_context(name, services):
    first_service, second_service = services
    with tracing_settings(PROPAGATE_TO=["127.0.0.1"]):
        assert _call_in_task(FOLLOWING[name], first_service.url("/redirect?to=" + second_service.url("/ok"))) == 200
    [first], [second] = first_service.headers, second_service.headers
    assert {"traceparent", "baggage"} <= set(first) and {"traceparent", "baggage"} <= set(second)
    assert second["traceparent"].split("-")[1] == first["traceparent"].split("-")[1], "one trace"


def test_uninstall_unwraps_the_redirect_steps():
    import aiohttp.client_reqrep
    import requests.sessions

    from tracing_app.integrations import get_integration

    steps = [(requests.sessions.SessionRedirectMixin, "rebuild_auth"),
             (urllib.request.HTTPRedirectHandler, "redirect_request"),
             (aiohttp.client_reqrep.ClientRequest, "update_headers")]
    assert all(hasattr(getattr(owner, name), "__wrapped__") for owner, name in steps)
    for switch in ("http_client", "urllib", "aiohttp"):
        get_integration(switch).uninstall()
    try:
        assert not any(hasattr(getattr(owner, name), "__wrapped__") for owner, name in steps)
    finally:
        for switch in ("http_client", "urllib", "aiohttp"):
            get_integration(switch).install(None)
    assert all(hasattr(getattr(owner, name), "__wrapped__") for owner, name in steps)
