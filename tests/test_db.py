"""Database spans through Django's execute wrappers, on the test database: PostgreSQL,
or SQLite where PostgreSQL cannot be reached (see tests/settings.py)."""

import pytest
from django.db import DatabaseError, connection, transaction
from opentelemetry import trace
from opentelemetry.sdk.trace import sampling

from apps.inventory.models import Stock
from apps.orders.models import Order
from tracing_app import get_tracer
from tracing_app.integrations.database import queries as db
from tracing_app.integrations.database import statements
from tracing_app.testing import Expect, assert_trace, capture_spans

pytestmark = pytest.mark.django_db

# What a query on a missing table reports, per backend: (error.type, db.response.status_code).
MISSING_TABLE = {"postgresql": ("UndefinedTable", "42P01"), "sqlite": ("OperationalError", None)}


def test_each_query_is_a_client_span_child_of_the_current_span(captured_spans):
    with get_tracer().start_as_current_span("work"):
        Order.objects.create(sku="widget", quantity=3)
        list(Stock.objects.filter(sku="widget"))
    assert_trace(captured_spans.records(), Expect("work", children=[
        Expect("INSERT orders_order", kind="CLIENT", attributes={"db.system.name": db.SYSTEMS[connection.vendor],
                                                                  "db.operation.name": "INSERT",
                                                                  "db.collection.name": "orders_order"}),
        Expect("SELECT inventory_stock", kind="CLIENT"),
    ]))


def test_parameters_are_never_recorded(captured_spans):
    Order.objects.create(sku="secret-sku-value", quantity=7)
    span = captured_spans.records()[0]
    assert "secret-sku-value" not in repr(span.attributes)
    assert "%s" not in span.attributes["db.query.text"] and "?" in span.attributes["db.query.text"]
    assert span.attributes["db.namespace"] == connection.settings_dict["NAME"]


def test_savepoints_are_not_traced(captured_spans):
    with transaction.atomic():  # the test case's own transaction makes this a savepoint
        Order.objects.create(sku="widget", quantity=1)
    assert captured_spans.names() == ["INSERT orders_order"]


def test_failed_query_is_an_error_span_and_still_raises(captured_spans):
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    span = captured_spans.records()[0]
    error_type, status_code = MISSING_TABLE[connection.vendor]
    assert span.error and span.attributes["error.type"] == error_type
    assert span.attributes.get("db.response.status_code") == status_code
    assert span.name == "SELECT no_such_table"


def test_executemany_records_batch_size(captured_spans):
    with connection.cursor() as cursor:
        cursor.executemany("UPDATE inventory_stock SET quantity = quantity WHERE sku = %s", [("widget",), ("gadget",)])
    assert captured_spans.records()[0].attributes["db.operation.batch.size"] == 2


def test_uninstalled_integration_traces_nothing(captured_spans):
    db.integration.uninstall()
    try:
        Order.objects.create(sku="widget", quantity=1)
        assert captured_spans.records() == []
    finally:
        from tracing_app.conf import get_config

        db.integration.install(get_config())
    Order.objects.create(sku="widget", quantity=1)
    assert captured_spans.names() == ["INSERT orders_order"]


@pytest.mark.parametrize(("sql", "expected"), [
    ('SELECT "a"."id" FROM "orders_order" "a" WHERE id = %s', ("SELECT", "orders_order")),
    ('INSERT INTO "orders_order" ("sku") VALUES (%s)', ("INSERT", "orders_order")),
    ('UPDATE "inventory_stock" SET quantity = 1', ("UPDATE", "inventory_stock")),
    ('DELETE FROM "orders_order" WHERE 1', ("DELETE", "orders_order")),
    ("select 1", ("SELECT", "")),
])
def test_describe_finds_operation_and_table(sql, expected):
    assert statements.describe(sql) == expected


def _current_span_inside_query():
    """The span that is current while the driver runs a query (a user wrapper inside ours sees it)."""
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append(trace.get_current_span())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        list(Stock.objects.filter(sku="widget"))
    return seen[0]


UNSAMPLED_PARENT = trace.NonRecordingSpan(trace.SpanContext(0xABC, 0xDEF, is_remote=True))


def test_query_under_an_unsampled_parent_creates_no_span_with_a_parent_based_sampler():
    with capture_spans(sampler=sampling.ParentBased(sampling.ALWAYS_ON)) as spans:
        with trace.use_span(UNSAMPLED_PARENT):
            inside = _current_span_inside_query()
    # No child span (not even a non-recording one) was made: the query runs under the parent.
    assert inside is UNSAMPLED_PARENT
    assert spans.names() == []


def test_query_under_an_unsampled_parent_is_still_traced_when_the_sampler_ignores_parents():
    with capture_spans(sampler=sampling.ALWAYS_ON) as spans:
        with trace.use_span(UNSAMPLED_PARENT):
            inside = _current_span_inside_query()
    assert inside is not UNSAMPLED_PARENT
    assert spans.names() == ["SELECT inventory_stock"]
