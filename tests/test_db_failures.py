"""Every span the database path starts ends, with ERROR and error.type, however the query
fails: the connection lost before the query runs, a failed connect (wrong port, wrong
database) on real PostgreSQL, an interrupt inside the driver, our own error recording or a
span processor failing. The connect tests need PostgreSQL itself."""

from __future__ import annotations

import psycopg
import pytest
from celery import shared_task
from django.db import DatabaseError, OperationalError, connection, connections
from django.http import HttpResponse
from django.test import Client
from django.urls import path
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

from tracing_app import get_tracer
from tracing_app.context import privacy
from tracing_app.pipeline import provider
from tracing_app.testing import capture_spans

pytestmark = pytest.mark.django_db


class OpenSpans(SpanProcessor):
    """Spans started and not (yet) ended, by name."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}

    def on_start(self, span, parent_context=None):
        self.open[span.context.span_id] = span.name

    def on_end(self, span):
        self.open.pop(span.context.span_id, None)


@pytest.fixture
def spans():
    with capture_spans() as captured:
        tracker = OpenSpans()
        provider.get_provider().add_span_processor(tracker)
        captured.open_spans = tracker.open
        yield captured


def _connection(**settings):
    """A second connection to the test database (or, with settings, somewhere it cannot reach)."""
    default = connections["default"]
    return type(default)({**default.settings_dict, **settings}, alias=f"tests-{id(settings)}")


@pytest.mark.services
def test_connection_lost_before_the_query_runs_is_an_error_span(spans):
    victim = _connection()
    with victim.cursor() as cursor:  # connected (and wrapped) while the server was there
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg.connect(host="127.0.0.1", port=connection.settings_dict.get("PORT") or 5432, user="postgres",
                         dbname="postgres", autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    try:
        with pytest.raises(DatabaseError), get_tracer().start_as_current_span("work"):
            with victim.cursor() as cursor:
                cursor.execute("SELECT 1")
    finally:
        victim.close()
    query = next(s for s in spans.records() if s.attributes.get("db.query.text") == "SELECT ?")
    assert query.error and query.attributes["error.type"] in ("AdminShutdown", "OperationalError")
    work = next(s for s in spans.records() if s.name == "work")
    assert work.error and query.parent_id == work.span_id
    assert spans.open_spans == {}


BROKEN = {"port": {"PORT": 1}, "database": {"NAME": "tracing_app_no_such_database"}}


def failing_connect_view(request, broken):
    with _connection(**BROKEN[broken]).cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("unreachable")


urlpatterns = [path("broken/<str:broken>/", failing_connect_view)]


@pytest.mark.services
@pytest.mark.urls(__name__)
@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_failed_connect_in_a_request_ends_the_request_span_with_error(spans, broken):
    before = trace.get_current_span()
    response = Client(raise_request_exception=False).get(f"/broken/{broken}/")
    assert response.status_code == 500
    # The connect fails in cursor creation, before any execute wrapper: no query span
    # starts, and the request span ends with the driver's error.
    (request,) = spans.records()
    assert request.kind == "SERVER" and request.error
    assert request.attributes["error.type"] == "OperationalError"
    assert spans.open_spans == {} and trace.get_current_span() is before


@shared_task(name="tests.db_failures.unreachable")
def unreachable(broken):
    with _connection(**BROKEN[broken]).cursor() as cursor:
        cursor.execute("SELECT 1")


@pytest.mark.services
@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_failed_connect_in_a_task_ends_the_task_span_with_error(spans, broken):
    result = unreachable.apply(args=[broken])
    assert isinstance(result.result, OperationalError)
    (task,) = spans.records()
    assert task.kind == "CONSUMER" and task.error
    assert task.attributes["error.type"] == "OperationalError"
    assert spans.open_spans == {}


def _raise_inside_execute(exc):
    def wrapper(execute, sql, params, many, context):
        raise exc
    return wrapper


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), SystemExit(3)])
def test_an_interrupt_inside_the_query_ends_its_span_with_error(spans, interrupt):
    with pytest.raises(type(interrupt)), connection.execute_wrapper(_raise_inside_execute(interrupt)):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    (query,) = spans.records()
    assert query.error and query.attributes["error.type"] == type(interrupt).__qualname__
    assert spans.open_spans == {}


def test_a_failure_recording_the_error_neither_hides_it_nor_leaves_the_span_open(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("recording failed")

    monkeypatch.setattr(privacy, "record_error", broken)
    with capture_spans(raise_errors=False) as captured:
        tracker = OpenSpans()
        provider.get_provider().add_span_processor(tracker)
        with pytest.raises(DatabaseError) as raised, connection.cursor() as cursor:
            cursor.execute("SELECT * FROM tracing_app_no_such_table")
    assert not isinstance(raised.value, RuntimeError)
    assert captured.names() == ["SELECT tracing_app_no_such_table"] and tracker.open == {}


class FailsOnEnd(SpanProcessor):
    def on_end(self, span):
        raise RuntimeError("processor failed")


@pytest.mark.parametrize("sql", ["SELECT 7", "SELECT * FROM tracing_app_no_such_table"])
def test_a_span_processor_failing_on_end_changes_neither_result_nor_error(sql):
    with capture_spans(raise_errors=False):
        provider.get_provider().add_span_processor(FailsOnEnd())
        with connection.cursor() as cursor:
            if "no_such" in sql:
                with pytest.raises(DatabaseError):
                    cursor.execute(sql)
            else:
                cursor.execute(sql)
                assert cursor.fetchone() == (7,)
