"""Repeated queries (N+1): a request or a task that runs one statement shape more than
REPEATED_QUERY_THRESHOLD times gets an attribute, one event per shape and one log line on
its own span; the query spans are unchanged; a loop at the threshold is not flagged."""

from __future__ import annotations

import logging

import pytest
from celery import shared_task
from django.http import HttpResponse
from django.test import Client
from django.urls import path

from apps.inventory.models import Stock
from apps.orders.models import Order
from tests.tracing_settings import tracing_settings
from tracing_app import get_tracer
from tracing_app.context import work

pytestmark = pytest.mark.django_db

SHAPE = ('SELECT "inventory_stock"."id", "inventory_stock"."sku", "inventory_stock"."quantity" '
         'FROM "inventory_stock" WHERE "inventory_stock"."sku" = ? ORDER BY "inventory_stock"."id" ASC LIMIT ?')


def _loop(n: int) -> None:
    for i in range(n):  # one query per row: the classic N+1
        Stock.objects.filter(sku=f"sku-{i}").first()


def loop_view(request, n):
    _loop(n)
    Order.objects.filter(sku="once").exists()  # another shape, once
    return HttpResponse("ok")


urlpatterns = [path("loop/<int:n>/", loop_view)]


@shared_task(name="tests.repeated_queries.loop")
def loop_task(n):
    _loop(n)


def _flags(span):
    return span.attributes.get("tracing_app.db.repeated_query.count"), [
        dict(attributes) for name, attributes in span.events if name == work.REPEATED_QUERY_EVENT]


@pytest.mark.urls(__name__)
def test_a_request_over_the_threshold_is_flagged_once(caplog):
    caplog.set_level(logging.WARNING, logger="tracing_app.context.work")
    with tracing_settings() as spans:
        assert Client().get("/loop/11/").status_code == 200
    (request,) = [s for s in spans.records() if s.kind == "SERVER"]
    count, events = _flags(request)
    assert count == 11
    assert events == [{"db.query.text": SHAPE, "tracing_app.db.repeated_query.count": 11}]
    queries = [s for s in spans.records() if s.kind == "CLIENT"]
    assert len(queries) == 12 and all(_flags(q) == (None, []) for q in queries)  # query spans unchanged
    lines = [r.getMessage() for r in caplog.records if r.name == "tracing_app.context.work"]
    assert len(lines) == 1 and "GET loop/<int:n>/ ran one statement 11 times" in lines[0] and SHAPE in lines[0]
    assert getattr(caplog.records[-1], "trace_id", request.trace_id) == request.trace_id


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("n", [1, 10])
def test_a_loop_at_or_under_the_threshold_is_not_flagged(caplog, n):
    caplog.set_level(logging.WARNING, logger="tracing_app.context.work")
    with tracing_settings() as spans:
        assert Client().get(f"/loop/{n}/").status_code == 200
    (request,) = [s for s in spans.records() if s.kind == "SERVER"]
    assert _flags(request) == (None, [])
    assert [r for r in caplog.records if r.name == "tracing_app.context.work"] == []


@pytest.mark.urls(__name__)
def test_the_threshold_is_a_setting_and_zero_turns_it_off(caplog):
    with tracing_settings(REPEATED_QUERY_THRESHOLD=2) as spans:
        Client().get("/loop/3/")
    assert _flags([s for s in spans.records() if s.kind == "SERVER"][0])[0] == 3
    with tracing_settings(REPEATED_QUERY_THRESHOLD=0) as spans:
        Client().get("/loop/30/")
    assert _flags([s for s in spans.records() if s.kind == "SERVER"][0]) == (None, [])


def test_a_task_over_the_threshold_is_flagged_on_its_own_span():
    with tracing_settings() as spans:
        loop_task.apply(args=[12])
        loop_task.apply(args=[4])
    tasks = [s for s in spans.records() if s.kind == "CONSUMER"]
    assert [_flags(t)[0] for t in tasks] == [12, None]
    assert _flags(tasks[0])[1] == [{"db.query.text": SHAPE, "tracing_app.db.repeated_query.count": 12}]


def test_several_shapes_each_get_an_event_highest_count_first():
    with tracing_settings(REPEATED_QUERY_THRESHOLD=3) as spans:
        with get_tracer().start_as_current_span("job") as job:
            opened = work.begin(job)
            _loop(5)
            for _ in range(4):
                Order.objects.filter(sku="x").exists()
            work.end(opened)
            work.end(opened)  # a second end changes nothing
    job_span = next(s for s in spans.records() if s.name == "job")
    count, events = _flags(job_span)
    assert count == 5 and [e["tracing_app.db.repeated_query.count"] for e in events] == [5, 4]
    assert work.current() is None


def test_unsampled_work_counts_nothing():
    from opentelemetry import trace

    assert work.begin(trace.INVALID_SPAN) is None
