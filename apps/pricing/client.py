"""Calling the pricing service from the web and the worker.

``quote()`` raises ``PriceNotFound`` when the sku has no price and
``PricingUnavailable`` for everything else (server down, deadline exceeded,
server error), so callers decide between "reject" and "retry later".
"""

from __future__ import annotations

import dataclasses
import os
import threading

import grpc
from django.conf import settings

from tracing_app import TracingClientInterceptor

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


def quote(sku: str, quantity: int, timeout: float | None = None) -> Quote:
    request = pricing_pb2.QuoteRequest(sku=sku, quantity=quantity)
    try:
        reply = _get_stub().GetQuote(request, timeout=timeout or settings.PRICING_TIMEOUT)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise PriceNotFound(exc.details()) from exc
        raise PricingUnavailable(f"pricing failed with {exc.code().name}: {exc.details()}", exc.code()) from exc
    return Quote(reply.sku, reply.quantity, reply.unit_price_cents, reply.total_cents, reply.currency)
