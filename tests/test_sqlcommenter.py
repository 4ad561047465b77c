"""sqlcommenter: with TRACING["SQL_COMMENTER"], each statement carries its span's trace context
as a comment, which PostgreSQL shows in pg_stat_activity; off by default."""

from __future__ import annotations

import re
import threading
import time

import django
import psycopg
import pytest
from django.db import connection, connections
from django.http import HttpResponse
from django.test import Client
from django.urls import path
from opentelemetry import trace

from tests.tracing_settings import tracing_settings
from tracing_app.integrations.database.sqlcommenter import Commenter

SPAN = trace.SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=False,
                         trace_flags=trace.TraceFlags(1), trace_state=trace.TraceState([("vendor", "a'b:c")]))
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(("sql", "params", "expected"), [
    ("SELECT 1", None, f"SELECT 1 /*traceparent='{TRACEPARENT}'*/"),
    ("SELECT 1;", None, f"SELECT 1 /*traceparent='{TRACEPARENT}'*/;"),
    ("SELECT 1 /* mine */", None, "SELECT 1 /* mine */"),  # a comment already: left alone (spec)
    ("SELECT 1 -- mine", None, "SELECT 1 -- mine"),
    # Trailing whitespace after the final ";", a comment before it, text that only looks like a comment.
    ("SELECT 1;\n  ", None, f"SELECT 1 /*traceparent='{TRACEPARENT}'*/;"),
    ("SELECT 1 /* mine */;", None, "SELECT 1 /* mine */;"),
    ("SELECT '--' AS dashes", None, "SELECT '--' AS dashes"),  # left alone: safe, only less linked
    ("SELECT %s", [1], f"SELECT %s /*traceparent='{TRACEPARENT}'*/"),
])
def test_the_comment_is_appended_per_the_specification(sql, params, expected):
    assert Commenter(("traceparent",), None).append(sql, SPAN, params) == expected


def test_keys_are_sorted_and_values_url_encoded_and_percent_doubled_for_the_driver():
    import psycopg as driver

    commenter = Commenter(("traceparent", "tracestate", "framework", "db_driver"), driver)
    comment = commenter.comment(SPAN)
    assert comment.startswith("/*db_driver='psycopg%3A") and "framework='django%3A" in comment
    assert comment.index("db_driver") < comment.index("framework") < comment.index("traceparent") < comment.index(
        "tracestate")
    assert "tracestate='vendor%3Da%27b%3Ac'" in comment  # ' encoded, never breaking the quotes
    with_params = commenter.append("SELECT %s", SPAN, ["x"])
    assert "db_driver='psycopg%%3A" in with_params and with_params.startswith("SELECT %s /*")


def _statements_seen():
    """The SQL the driver receives (an execute wrapper inside ours sees the commented text)."""
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    return seen, spy


@pytest.mark.django_db
def test_off_by_default_and_on_when_set():
    for enabled in (False, True):
        seen, spy = _statements_seen()
        with tracing_settings(SQL_COMMENTER=enabled) as spans, connection.execute_wrapper(spy):
            with connection.cursor() as cursor:
                cursor.execute("SELECT %s", [1])
                assert cursor.fetchone() == (1,)
        (span,) = spans.records()
        assert span.attributes["db.query.text"] == "SELECT ?"  # the span never shows the comment
        if enabled:  # flags 01, or 03 when the SDK marks the trace id random (W3C level 2)
            assert len(seen) == 1
            assert re.fullmatch(rf"SELECT %s /\*traceparent='00-{span.trace_id}-{span.span_id}-0[13]'\*/", seen[0])
        else:
            assert seen == ["SELECT %s"]


@pytest.mark.services
@pytest.mark.django_db
def test_what_postgresql_receives_is_url_encoded_once_whatever_the_parameters():
    """A tracestate value holding ``%``, ``*/`` and ``=``: encoded, and the ``%`` doubled for
    the driver exactly when it formats the statement (ORM parameters, none, executemany)."""
    from opentelemetry import context

    from apps.inventory.models import Stock

    sent = []

    def spy(execute, sql, params, many, context_):
        result = execute(sql, params, many, context_)
        sent.append(connection.ops.last_executed_query(context_["cursor"], sql, params))  # psycopg's own text
        return result

    parent = trace.SpanContext(SPAN.trace_id, SPAN.span_id, is_remote=True, trace_flags=trace.TraceFlags(1),
                               trace_state=trace.TraceState([("vendor", "a%b*/c")]))
    with tracing_settings(SQL_COMMENTER=True, SQL_COMMENTER_FIELDS=["tracestate", "traceparent"]):
        token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(parent)))
        try:
            with connection.execute_wrapper(spy):
                list(Stock.objects.filter(sku="x"))  # parameters
                list(Stock.objects.all())  # an empty parameter tuple: the driver still formats
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")  # no parameters: not formatted
                    cursor.executemany("SELECT %s", [(1,), (2,)])
        finally:
            context.detach(token)
    assert len(sent) == 4
    for statement in sent:
        assert re.search(r" /\*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01',"
                         r"tracestate='vendor%3Da%25b%2A%2Fc'\*/$", statement), statement


def hold_a_query(request, year):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(600)")
    return HttpResponse("slept")




urlpatterns = [path("reports/<int:year>/slow/", hold_a_query, name="slow-report")]


def _admin():
    return psycopg.connect(host=connection.settings_dict.get("HOST") or "127.0.0.1",
                           port=connection.settings_dict.get("PORT") or 5432, user="postgres", dbname="postgres",
                           autocommit=True)


@pytest.mark.services
@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_pg_stat_activity_shows_the_trace_of_a_query_a_request_holds_open():
    outcome = {}

    def request():
        try:
            response = Client(raise_request_exception=False).get("/reports/2026/slow/")
            outcome["status"], outcome["body"] = response.status_code, response.content[:2000]
        finally:
            connections.close_all()

    fields = ["traceparent", "route", "controller", "framework"]
    with tracing_settings(SQL_COMMENTER=True, SQL_COMMENTER_FIELDS=fields) as spans, _admin() as admin:
        thread = threading.Thread(target=request)
        thread.start()
        deadline, found = time.monotonic() + 120, None
        while found is None and time.monotonic() < deadline:
            found = admin.execute("SELECT pid, query FROM pg_stat_activity WHERE query LIKE %s AND pid <> "
                                  "pg_backend_pid()", ["SELECT pg_sleep(600)%"]).fetchone()
            time.sleep(0.05)
        assert found is not None, f"the request's query never showed in pg_stat_activity: {outcome}"
        admin.execute("SELECT pg_cancel_backend(%s)", [found[0]])  # the request answers 500 now
        thread.join(timeout=120)
    assert outcome.get("status") == 500
    query = next(s for s in spans.records() if s.kind == "CLIENT")
    request_span = next(s for s in spans.records() if s.kind == "SERVER")
    assert query.parent_id == request_span.span_id and query.error
    assert found[1].startswith("SELECT pg_sleep(600) /*controller='slow-report',framework='django%3A"
                        f"{django.get_version()}',route='reports%2F%3Cint%3Ayear%3E%2Fslow%2F',"
                        f"traceparent='00-{query.trace_id}-{query.span_id}-0") and found[1][-4:] in ("1'*/", "3'*/")
