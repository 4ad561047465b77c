"""The pricing servicer on the test database, and the checked-in generated code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from apps.pricing.api import pricing_pb2
from apps.pricing.models import Price
from apps.pricing.service import PricingServicer

# The handler without its close_old_connections() wrapper: the test's transaction
# holds the connection (Django's test client disconnects the same hook).
get_quote = PricingServicer.GetQuote.__wrapped__

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "apps" / "pricing" / "api"


class Aborted(Exception):
    pass


class FakeContext:
    """Just enough of grpc.ServicerContext for a unit test: abort() raises, as gRPC's does."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted(details)


@pytest.mark.django_db
def test_quote_multiplies_the_unit_price_from_the_database():
    Price.objects.update_or_create(sku="widget", defaults={"unit_price_cents": 250, "currency": "EUR"})
    reply = get_quote(PricingServicer(), pricing_pb2.QuoteRequest(sku="widget", quantity=3), FakeContext())
    assert (reply.sku, reply.quantity, reply.unit_price_cents, reply.total_cents, reply.currency) == (
        "widget", 3, 250, 750, "EUR")


@pytest.mark.django_db
@pytest.mark.parametrize(("sku", "quantity", "code"), [
    ("no-such-sku", 1, grpc.StatusCode.NOT_FOUND),
    ("", 1, grpc.StatusCode.INVALID_ARGUMENT),
    ("widget", 0, grpc.StatusCode.INVALID_ARGUMENT),
])
def test_bad_requests_abort_with_a_status(sku, quantity, code):
    context = FakeContext()
    with pytest.raises(Aborted):
        get_quote(PricingServicer(), pricing_pb2.QuoteRequest(sku=sku, quantity=quantity), context)
    assert context.code == code


def test_checked_in_generated_code_matches_the_proto(tmp_path):
    """`make protos` was run after the last .proto change."""
    proto = "apps/pricing/api/pricing.proto"
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", proto],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    for name in ("pricing_pb2.py", "pricing_pb2.pyi", "pricing_pb2_grpc.py"):
        generated = (tmp_path / "apps" / "pricing" / "api" / name).read_text()
        assert (API / name).read_text() == generated, f"{name} is stale: run `make protos`"
