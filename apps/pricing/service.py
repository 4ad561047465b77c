"""The Pricing gRPC servicer: quotes read the Price table."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import grpc
from django.db import close_old_connections

from .api import pricing_pb2, pricing_pb2_grpc
from .models import Price


def django_db_call(method: Callable[..., Any]) -> Callable[..., Any]:
    """What Django's request_started/request_finished do for a view: a handler thread
    reuses its connection only while it is healthy and younger than CONN_MAX_AGE."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return method(*args, **kwargs)
        finally:
            close_old_connections()

    return wrapper


class PricingServicer(pricing_pb2_grpc.PricingServicer):
    @django_db_call
    def GetQuote(self, request: pricing_pb2.QuoteRequest, context: grpc.ServicerContext) -> pricing_pb2.Quote:  # noqa: N802 (generated name)
        if not request.sku or request.quantity < 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sku must be set and quantity at least 1")
        price = Price.objects.filter(sku=request.sku).first()
        if price is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no price for sku {request.sku!r}")
        return pricing_pb2.Quote(
            sku=price.sku,
            quantity=request.quantity,
            unit_price_cents=price.unit_price_cents,
            total_cents=price.unit_price_cents * request.quantity,
            currency=price.currency,
        )
