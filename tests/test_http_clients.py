"""Outgoing HTTP with every client library we trace (requests, httpx sync and async,
urllib3, urllib.request, aiohttp), each against a real HTTP server on loopback:
one CLIENT span with the stable HTTP attribute names, a child of the caller's span,
whose context the server receives only when PROPAGATE_TO allows the host, and an
ERROR span, ended, when the request fails."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import httpx
import pytest
import requests
import urllib3
from opentelemetry import baggage, context

from tests.e2e.stack import free_port
from tests.tracing_settings import tracing_settings
from tracing_app.integrations import REGISTRY, get_integration
from tracing_app.pipeline.provider import get_tracer
from tracing_app.testing import Expect, assert_trace, capture_spans

OLD_NAMES = {"http.method", "http.url", "http.status_code", "net.peer.name", "net.peer.port", "http.scheme",
             "http.host", "http.target", "http.flavor"}
PROPAGATION_HEADERS = {"traceparent", "tracestate", "baggage"}


class Service:
    """An HTTP service on 127.0.0.1 that keeps each request's headers; ``/status/<n>`` answers n."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.release = threading.Event()  # /slow answers once it is set
        self.waiting = threading.Event()  # a /slow request arrived
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                service.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path == "/slow":
                    service.waiting.set()
                    service.release.wait(30)
                if self.path.startswith("/redirect?to="):  # a 302 to the URL after "to="
                    self.send_response(302)
                    self.send_header("Location", self.path.partition("=")[2])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/status/") else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/ok", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service() -> Iterator[Service]:
    running = Service()
    yield running
    running.stop()


# -- one call per client library: GET url, return the status (raise on a transport error) --


def _requests(url: str) -> int:
    return requests.get(url, timeout=10).status_code


def _httpx(url: str) -> int:
    with httpx.Client(timeout=10) as client:
        return client.get(url).status_code


def _httpx_async(url: str) -> int:
    async def call() -> int:
        async with httpx.AsyncClient(timeout=10) as client:
            return (await client.get(url)).status_code

    return asyncio.run(call())


def _urllib3(url: str) -> int:
    return urllib3.PoolManager(retries=False, timeout=10).request("GET", url).status


def _urllib(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _aiohttp(url: str) -> int:
    async def call() -> int:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status

    return asyncio.run(call())


# (integration switch, call, the exception a refused connection raises)
CLIENTS: dict[str, tuple[str, Callable[[str], int], type[BaseException]]] = {
    "requests": ("http_client", _requests, requests.ConnectionError),
    "httpx": ("httpx", _httpx, httpx.ConnectError),
    "httpx-async": ("httpx", _httpx_async, httpx.ConnectError),
    "urllib3": ("urllib3", _urllib3, urllib3.exceptions.HTTPError),
    "urllib": ("urllib", _urllib, urllib.error.URLError),
    "aiohttp": ("aiohttp", _aiohttp, aiohttp.ClientConnectionError),
}


@pytest.fixture(params=list(CLIENTS))
def client(request) -> tuple[str, Callable[[str], int], type[BaseException]]:
    switch, call, refused = CLIENTS[request.param]
    assert get_integration(switch).installed, f"the {switch} integration is not installed in the test process"
    return switch, call, refused


def _call_in_task(call: Callable[[str], int], url: str) -> int:
    token = context.attach(baggage.set_baggage("tenant.id", "acme"))
    try:
        with get_tracer().start_as_current_span("task"):
            return call(url)
    finally:
        context.detach(token)


def _client_span(captured):
    [span] = [s for s in captured.records() if s.kind == "CLIENT"]
    return span


def test_a_request_is_a_client_span_with_the_stable_names_and_the_server_gets_its_context(client, service,
                                                                                         captured_spans):
    _, call, _ = client
    assert _call_in_task(call, service.url("/ok")) == 200
    assert_trace(captured_spans, Expect("task", children=[Expect("GET", kind="CLIENT", error=False, attributes={
        "http.request.method": "GET", "url.full": service.url("/ok"), "server.address": "127.0.0.1",
        "server.port": service.port, "http.response.status_code": 200, "network.protocol.version": "1.1",
    })]))
    span = _client_span(captured_spans)
    assert not OLD_NAMES & set(span.attributes), "old HTTP attribute names beside the stable ones"
    [received] = service.headers
    assert received["traceparent"].split("-")[1:3] == [span.trace_id, span.span_id]
    assert received["baggage"] == "tenant.id=acme"


@pytest.mark.parametrize(("status", "error"), [(200, False), (404, True), (503, True)])
def test_the_answer_s_status_is_recorded_and_4xx_5xx_are_errors_named_by_their_code(client, service, captured_spans,
                                                                                   status, error):
    _, call, _ = client
    assert _call_in_task(call, service.url(f"/status/{status}")) == status
    span = _client_span(captured_spans)
    assert span.attributes["http.response.status_code"] == status
    assert span.error is error
    assert span.attributes.get("error.type") == (str(status) if error else None)


@pytest.mark.parametrize("allowed", [["127.0.0.1"], ["10.0.0.0/8", "127.0.0.0/8"]])
def test_context_goes_only_to_hosts_propagate_to_allows(client, service, allowed):
    """The same server under two names: 127.0.0.1 is allowed, localhost is not. A
    withheld request does not silence the next one to an allowed host."""
    _, call, _ = client
    with tracing_settings(PROPAGATE_TO=allowed) as captured:
        assert _call_in_task(call, service.url("/ok", host="localhost")) == 200
        assert _call_in_task(call, service.url("/ok")) == 200
    withheld, sent = service.headers
    assert not PROPAGATION_HEADERS & set(withheld), "context sent to a host outside PROPAGATE_TO"
    assert {"traceparent", "baggage"} <= set(sent)
    clients = [s for s in captured.records() if s.kind == "CLIENT"]
    assert [s.attributes["server.address"] for s in clients] == ["localhost", "127.0.0.1"], "both still traced"


def test_a_refused_connection_is_an_ended_error_span_with_its_error_type(client, captured_spans):
    _, call, refused = client
    url = f"http://127.0.0.1:{free_port()}/ok"  # nothing listens there
    with pytest.raises(refused):
        _call_in_task(call, url)
    assert_trace(captured_spans, Expect("task", error=True, children=[Expect("GET", kind="CLIENT", error=True)]))
    span = _client_span(captured_spans)
    assert span.end_ns >= span.start_ns > 0
    assert span.attributes["error.type"] and span.attributes["error.type"] != "_OTHER"
    assert "http.response.status_code" not in span.attributes


def test_uninstall_restores_the_plain_client_and_install_again_traces(client, service, captured_spans):
    switch, call, _ = client
    switches = {name for name, _, _ in CLIENTS.values()}  # all of them: requests sends through urllib3
    for name in switches:
        get_integration(name).uninstall()
    try:
        assert call(service.url("/ok")) == 200
        get_integration(switch).install(None)
        assert call(service.url("/ok")) == 200
    finally:
        for name in switches:
            get_integration(name).install(None)
    untraced, traced = service.headers
    assert "traceparent" not in untraced and "traceparent" in traced
    assert [s.kind for s in captured_spans.records()] == ["CLIENT"]


def test_requests_over_urllib3_is_one_span(service, captured_spans):
    assert get_integration("urllib3").installed
    _call_in_task(_requests, service.url("/ok"))
    assert_trace(captured_spans, Expect("task", children=[
        Expect("GET", kind="CLIENT", attributes={"user_agent.original": requests.utils.default_user_agent()}),
    ]))


def test_every_http_client_is_an_integration_with_its_instrumentation_as_a_requirement():
    for switch in {switch for switch, _, _ in CLIENTS.values()}:
        modules = [requirement.module for requirement in REGISTRY[switch].requires]
        assert any(module.startswith("opentelemetry.instrumentation.") for module in modules), switch


def _http_mode():
    from opentelemetry.instrumentation._semconv import (
        _OpenTelemetrySemanticConventionStability,
        _OpenTelemetryStabilitySignalType,
    )

    return _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
        _OpenTelemetryStabilitySignalType.HTTP)


def test_stable_names_are_chosen_for_our_instrumentors_only_and_a_user_s_http_dup_is_kept(service, monkeypatch,
                                                                                         captured_spans):
    from opentelemetry.instrumentation._semconv import (
        _OpenTelemetrySemanticConventionStability,
        _OpenTelemetryStabilitySignalType,
        _StabilityMode,
    )

    # Others (Django's instrumentation, the user's) still see the process's own choice: the default.
    assert _http_mode() is _StabilityMode.DEFAULT
    integration = get_integration("http_client")
    monkeypatch.setattr(_OpenTelemetrySemanticConventionStability, "_OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING",
                        {_OpenTelemetryStabilitySignalType.HTTP: _StabilityMode.HTTP_DUP})  # OTEL_..._OPT_IN=http/dup
    integration.uninstall()
    try:
        integration.install(None)
        _call_in_task(_requests, service.url("/ok"))
    finally:
        integration.uninstall()
        monkeypatch.undo()
        integration.install(None)
    span = _client_span(captured_spans)
    assert span.attributes["http.request.method"] == span.attributes["http.method"] == "GET"
    assert span.attributes["http.response.status_code"] == span.attributes["http.status_code"] == 200


async def _cancel_when_waiting(service: Service, request) -> None:
    task = asyncio.ensure_future(request)
    while not service.waiting.is_set():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _httpx_slow(url: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        await client.get(url)


async def _aiohttp_slow(url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        await response.read()


@pytest.mark.parametrize("request_", [_httpx_slow, _aiohttp_slow], ids=["httpx-async", "aiohttp"])
def test_an_async_request_cancelled_in_flight_ends_its_span(service, captured_spans, request_):
    with get_tracer().start_as_current_span("task"):
        asyncio.run(_cancel_when_waiting(service, request_(service.url("/slow"))))
    span = _client_span(captured_spans)
    assert span.end_ns >= span.start_ns > 0
    assert "http.response.status_code" not in span.attributes


def test_our_hooks_failing_never_fail_the_request_and_the_span_still_ends(client, service, monkeypatch):
    _, call, _ = client

    def broken(*args):
        raise RuntimeError("hook broke")

    for name in ("set_server", "set_protocol_version", "set_error_status_code", "withhold_unless_allowed"):
        for module in ("requests", "httpx", "urllib3", "urllib", "aiohttp"):
            monkeypatch.setattr(f"tracing_app.integrations.http_client.{module}.{name}", broken, raising=False)
    with capture_spans(raise_errors=False) as captured:  # as in production: logged, not raised
        assert _call_in_task(call, service.url("/ok")) == 200
    span = _client_span(captured)
    assert span.end_ns >= span.start_ns > 0 and not span.error
