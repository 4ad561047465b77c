"""db.query.text that stays useful and small: one placeholder style, repeated lists written
once with their count, a length cap, attribute length limits without a warning per span,
and statement caches bounded by bytes."""

import logging
import re

import pytest
import requests
from django.db import connection
from django.test import Client

from apps.inventory.models import Stock
from apps.orders.models import Order
from tests.test_http_clients import Service
from tests.test_privacy import charge_card
from tests.tracing_settings import tracing_settings
from tracing_app import get_tracer
from tracing_app.conf import get_config
from tracing_app.integrations.database import queries, statements
from tracing_app.integrations.database.statements import MORE, StatementCache, shape
from tracing_app.testing import capture_spans


def _list(n: int, item: str = "%s") -> str:
    return ", ".join([item] * n)


@pytest.mark.parametrize(("sql", "text", "in_list_size", "rows"), [
    # Django's IN lists of any length, with driver placeholders or inline numbers.
    (f'SELECT "o"."id" FROM "orders_order" "o" WHERE "o"."id" IN ({_list(30000)}) LIMIT 21',
     f'SELECT "o"."id" FROM "orders_order" "o" WHERE "o"."id" IN (?{MORE}) LIMIT ?', 30000, 0),
    (f"SELECT * FROM t WHERE id IN ({', '.join(str(i) for i in range(500))})",
     f"SELECT * FROM t WHERE id IN (?{MORE})", 500, 0),
    (f"SELECT * FROM t WHERE sku IN ({_list(3, repr('secret'))}) AND id IN (%s, %s)",
     f"SELECT * FROM t WHERE sku IN (?{MORE}) AND id IN (?{MORE})", 5, 0),
    # Row values: (a, b) IN ((%s, %s), ...).
    (f"SELECT * FROM t WHERE (a, b) IN ({_list(4, '(%s, %s)')})",
     f"SELECT * FROM t WHERE (a, b) IN ((?, ?){MORE})", 4, 0),
    # bulk_create: identical rows after VALUES, with RETURNING and ON CONFLICT after them.
    (f'INSERT INTO "t" ("a", "b") VALUES {_list(1000, "(%s, %s)")} RETURNING "t"."id"',
     f'INSERT INTO "t" ("a", "b") VALUES (?, ?){MORE} RETURNING "t"."id"', 0, 1000),
    (f'INSERT INTO "t" ("a") VALUES {_list(3, "(%s)")} ON CONFLICT DO NOTHING',
     f'INSERT INTO "t" ("a") VALUES (?){MORE} ON CONFLICT DO NOTHING', 0, 3),
    # Rows that differ only by values are the same row once values are "?".
    ("INSERT INTO t VALUES (%s, 1), (%s, 2)", f"INSERT INTO t VALUES (?, ?){MORE}", 0, 2),
    # PostgreSQL's array constructor, the other way raw SQL writes a long list (ANY(ARRAY[...])).
    (f"SELECT * FROM t WHERE id = ANY(ARRAY[{', '.join(str(i) for i in range(5000))}])",
     f"SELECT * FROM t WHERE id = ANY(ARRAY[?{MORE}])", 5000, 0),
    (f"SELECT * FROM t WHERE sku = ANY(array[{_list(3, repr('s'))}]) AND id IN (%s, %s)",
     f"SELECT * FROM t WHERE sku = ANY(array[?{MORE}]) AND id IN (?{MORE})", 5, 0),
    ("SELECT ARRAY[a, b] FROM t WHERE x = ANY(ARRAY[%s])", "SELECT ARRAY[a, b] FROM t WHERE x = ANY(ARRAY[?])", 0, 0),
    # What must stay: a one-item list, one row, a subquery, rows of different shapes.
    ("SELECT * FROM t WHERE id IN (%s)", "SELECT * FROM t WHERE id IN (?)", 0, 0),
    ('INSERT INTO "t" ("a") VALUES (%s)', 'INSERT INTO "t" ("a") VALUES (?)', 0, 0),
    ("SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE x = %s)",
     "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE x = ?)", 0, 0),
    ("INSERT INTO t VALUES (%s, DEFAULT), (%s, %s)", "INSERT INTO t VALUES (?, DEFAULT), (?, ?)", 0, 0),
])
def test_repeated_lists_are_written_once_with_their_count(sql, text, in_list_size, rows):
    found = shape(sql)
    assert (found.text, found.in_list_size, found.rows) == (text, in_list_size, rows)


@pytest.mark.parametrize(("sql", "text"), [
    # One placeholder style whatever wrote the value: the ORM (%s, %(name)s) or the code (literals).
    ('SELECT "t"."id" FROM "t" WHERE "t"."sku" = %s LIMIT 21', 'SELECT "t"."id" FROM "t" WHERE "t"."sku" = ? LIMIT ?'),
    ("SELECT * FROM t WHERE a = %(sku)s AND b = 'x' AND c = 2.5", "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?"),
    ("UPDATE t SET n = n + %s WHERE id = 7", "UPDATE t SET n = n + ? WHERE id = ?"),
])
def test_values_are_shown_in_one_placeholder_style(sql, text):
    assert shape(sql).text == text


def test_the_text_is_cut_to_the_configured_length():
    sql = "SELECT " + ", ".join(f'"column_{i}"' for i in range(2000)) + " FROM t"
    assert len(shape(sql).text) == statements.DEFAULT_MAX_LENGTH
    assert shape(sql, max_length=100).text == sql[:100]


def test_statement_cache_is_bounded_by_bytes_whatever_the_statements():
    cache = StatementCache(max_bytes=200_000)
    for n in range(1, 301):  # 300 long statements of different lengths (and shapes)
        columns = ", ".join(f'"c{i}"' for i in range(n * 10))
        cache.get(f"SELECT {columns} FROM t WHERE id IN ({_list(n * 100)})", False, 2048)
        assert cache.bytes <= cache.max_bytes
    assert 0 < len(cache) < 300
    # A recent statement is still there, an old one is not, and both give the same shape again.
    again = f"SELECT {', '.join(f'c{i}' for i in range(3))} FROM t"
    assert cache.get(again, False, 2048) is cache.get(again, False, 2048)


def test_long_statements_are_cached_by_digest_not_by_text():
    cache = StatementCache()
    sql = f"SELECT * FROM t WHERE id IN ({_list(30000)})"
    cache.get(sql, False, 2048)
    assert cache.bytes < statements.ENTRY_OVERHEAD + statements.LONG_SQL + 16 + 100
    assert [type(key) for key in cache._entries] == [bytes]  # a 16-byte digest, not the 120 kB text


@pytest.mark.django_db
def test_thirty_thousand_ids_make_a_short_query_text(captured_spans):
    list(Order.objects.filter(id__in=range(1, 30001)))
    span = captured_spans.records()[0]
    assert span.attributes["db.query.text"].endswith(f'WHERE "orders_order"."id" IN (?{MORE})')
    assert span.attributes["tracing_app.db.query.in_list.size"] == 30000
    assert len(span.attributes["db.query.text"]) < 400


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "fields"), [(Stock, {"quantity": 1}), (Order, {"quantity": 1, "currency": "EUR"})])
def test_bulk_create_is_one_row_and_a_batch_size(captured_spans, model, fields):
    # Stock on PostgreSQL: Django 5.2's INSERT ... UNNEST(arrays); Order (db_default): VALUES rows.
    model.objects.bulk_create([model(sku=f"bulk-{i}", **fields) for i in range(250)])
    inserts = [s for s in captured_spans.records() if s.name.startswith("INSERT")]
    # One INSERT on PostgreSQL; on SQLite, Django splits by its 999-parameter limit.
    assert sum(s.attributes["db.operation.batch.size"] for s in inserts) == 250
    for span in inserts:
        text = span.attributes["db.query.text"]
        assert "%s" not in text and len(text) < 400
        assert "UNNEST" in text or re.search(r"VALUES \((\?, )*\?\)" + re.escape(MORE), text), text


@pytest.mark.django_db
def test_query_text_max_length_setting():
    with tracing_settings(QUERY_TEXT_MAX_LENGTH=30) as spans:
        list(Stock.objects.filter(sku="x"))
    assert spans.records()[0].attributes["db.query.text"] == 'SELECT "inventory_stock"."id",'


def _long_values(service_url: str):
    list(Stock.objects.filter(sku="x" * 100))
    Client().get("/ok/", HTTP_USER_AGENT="agent/" + "y" * 200)
    requests.get(service_url + "/" + "p" * 200)
    Client(raise_request_exception=False).get("/boom/")  # an exception event with a long stack trace
    with get_tracer().start_as_current_span("work") as work:
        work.set_attribute("note", "z" * 100)
        work.add_event("note", {"text": "w" * 100})
        work.record_exception(ValueError("m" * 300))
    charge_card.apply(args=["c" * 200])  # task arguments, recorded for this task


@pytest.mark.django_db
@pytest.mark.urls("tests.urls")
@pytest.mark.parametrize("variable", ["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"])
def test_attribute_length_limits_apply_to_every_span_without_a_warning(monkeypatch, caplog, variable):
    monkeypatch.setenv(variable, "40")
    get_config.cache_clear()  # the configuration reads OTEL_* variables once
    caplog.set_level(logging.WARNING)
    service = Service()
    try:
        # The provider takes the limits from the configuration when built.
        with tracing_settings(RECORD_TASK_ARGS=[r"^tests\.charge_card$"]) as spans:
            for _ in range(60):  # a few hundred spans: a log line per span would show as hundreds
                _long_values(service.url(""))
    finally:
        monkeypatch.undo()
        get_config.cache_clear()
        service.stop()
    assert len(spans.records()) == 60 * 6
    by_name = {span.name: span for span in spans.records()}
    assert by_name["GET"].attributes["url.full"] == f"http://127.0.0.1:{service.port}/" + "p" * (40 - 23)
    events = dict(by_name["work"].events)
    assert by_name["SELECT inventory_stock"].attributes["db.query.text"] == 'SELECT "inventory_stock"."id", "inventor'
    assert by_name["GET ok/"].attributes["user_agent.original"] == "agent/" + "y" * 34
    assert by_name["work"].attributes["note"] == "z" * 40
    assert by_name["process tests.charge_card"].attributes["celery.task.args"] == "('" + "c" * 38
    if variable == "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT":  # the span-only variable leaves events alone
        assert by_name["work"].events[0][1]["text"] == "w" * 40
        assert events["exception"]["exception.message"] == "m" * 40
        assert len(by_name["GET boom/"].events[0][1]["exception.stacktrace"]) == 40
    # django.request's own "Internal Server Error" line for /boom/ is the host's, not ours.
    assert [r.getMessage() for r in caplog.records if r.name != "django.request"] == []


@pytest.mark.django_db
def test_the_database_integration_uses_one_byte_bounded_cache():
    queries.STATEMENTS.clear()
    with capture_spans():
        for n in range(1, 40):
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT 1 WHERE 1 IN ({_list(n * 200)})", list(range(n * 200)))
    assert 0 < queries.STATEMENTS.bytes <= statements.STATEMENT_CACHE_MAX_BYTES
    assert len(queries.STATEMENTS) == 39


def test_the_cache_keeps_mysql_readings_apart_and_drops_shapes_of_another_length():
    cache = StatementCache()
    sql = "select 'it\\'s', 'x' from t"
    assert cache.get(sql, False, 2048).text == "select ?s??"  # PostgreSQL: 'it\' is a whole string
    assert cache.get(sql, True, 2048).text == "select ?, ? from t"  # MySQL: \' does not end it
    assert cache.get(sql, False, 8).text == "select ?"
