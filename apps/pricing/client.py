"""Calling the pricing service from the web and the worker.

``quote()`` raises ``PriceNotFound`` when the sku has no price and
``PricingUnavailable`` for everything else (server down, deadline exceeded,
server error), so callers decide between "reject" and "retry later".
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import weakref

import grpc
import grpc.aio
from django.conf import settings

from tracing_app import TracingClientInterceptor, aio_client_interceptors

from .api import pricing_pb2, pricing_pb2_grpc


class PricingError(Exception):
    pass


class PriceNotFound(PricingError):
    pass


class PricingUnavailable(PricingError):
    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclasses.dataclass(frozen=True)
class Quote:
    sku: str
    quantity: int
    unit_price_cents: int
    total_cents: int
    currency: str


_lock = threading.Lock()
_stub: tuple[int, str, pricing_pb2_grpc.PricingStub] | None = None


def _get_stub() -> pricing_pb2_grpc.PricingStub:
    """One channel per process and target. Made on first use, never before a fork:
    gunicorn and Celery prefork children each open their own (gRPC channels do not
    survive fork)."""
    global _stub
    target = settings.PRICING_TARGET
    with _lock:
        if _stub is None or _stub[:2] != (os.getpid(), target):
            channel = grpc.intercept_channel(grpc.insecure_channel(target), TracingClientInterceptor(target))
            _stub = (os.getpid(), target, pricing_pb2_grpc.PricingStub(channel))
        return _stub[2]


def _failed(exc: grpc.RpcError) -> PricingError:
    if exc.code() == grpc.StatusCode.NOT_FOUND:
        return PriceNotFound(exc.details())
    return PricingUnavailable(f"pricing failed with {exc.code().name}: {exc.details()}", exc.code())


def _quote(reply: pricing_pb2.Quote) -> Quote:
    return Quote(reply.sku, reply.quantity, reply.unit_price_cents, reply.total_cents, reply.currency)


def quote(sku: str, quantity: int, timeout: float | None = None) -> Quote:
    request = pricing_pb2.QuoteRequest(sku=sku, quantity=quantity)
    try:
        reply = _get_stub().GetQuote(request, timeout=timeout or settings.PRICING_TIMEOUT)
    except grpc.RpcError as exc:
        raise _failed(exc) from exc
    return _quote(reply)


# grpc.aio channels belong to the event loop they were made in: one per loop and target.
# Under ASGI that is one per worker; under WSGI Django runs each async view in a new loop.
_aio_stubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, pricing_pb2_grpc.PricingStub]] = (
    weakref.WeakKeyDictionary())


def _get_aio_stub() -> pricing_pb2_grpc.PricingStub:
    loop = asyncio.get_running_loop()
    target = settings.PRICING_TARGET
    found = _aio_stubs.get(loop)
    if found is None or found[0] != target:
        channel = grpc.aio.insecure_channel(target, interceptors=aio_client_interceptors(target))
        found = _aio_stubs[loop] = (target, pricing_pb2_grpc.PricingStub(channel))
    return found[1]


async def aquote(sku: str, quantity: int, timeout: float | None = None) -> Quote:
    """``quote()`` for async code, over ``grpc.aio``: same answers, same errors."""
    request = pricing_pb2.QuoteRequest(sku=sku, quantity=quantity)
    try:
        reply = await _get_aio_stub().GetQuote(request, timeout=timeout or settings.PRICING_TIMEOUT)
    except grpc.RpcError as exc:  # grpc.aio.AioRpcError is one
        raise _failed(exc) from exc
    return _quote(reply)
