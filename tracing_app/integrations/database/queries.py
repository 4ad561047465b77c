"""Database spans: one CLIENT span per query the ORM (or ``connection.cursor()``) runs.

Installed through Django's public ``connection.execute_wrappers`` on each new
connection (``connection_created``), not by patching the driver as
``opentelemetry-instrumentation-psycopg`` does. That gives three things the
driver-level hook cannot: one hook for every backend Django supports (the
embedded SQLite demo gets the same spans as PostgreSQL), no spans for Django's
own connection set-up queries (timezone, type look-ups), and the SQL exactly as
the ORM wrote it with parameters kept apart (never recorded).

Every span the wrapper starts ends, whatever stops the query: a driver error, a
connection lost before the query runs, an interrupt (``BaseException``), or a
failure in our own error recording or a span processor (swallowed, never in place
of the query's own result or error). A connect that fails (server unreachable,
wrong database) raises in Django's cursor creation, before any execute wrapper:
no query span starts, and the request or task span ends with the error.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tracing_app.conf import TracingConfig
from tracing_app.context import privacy, work
from tracing_app.context.propagators import attach, current_context, detach, with_span
from tracing_app.context.suppression import suppressed
from tracing_app.integrations.base import Integration
from tracing_app.integrations.database.sqlcommenter import Commenter
from tracing_app.integrations.database.statements import DEFAULT_MAX_LENGTH, StatementCache
from tracing_app.pipeline.fast_spans import drops_child_of_current
from tracing_app.pipeline.provider import get_tracer
from tracing_app.safety import swallow
from tracing_app.semconv import (
    DB_COLLECTION_NAME,
    DB_NAMESPACE,
    DB_OPERATION_BATCH_SIZE,
    DB_OPERATION_NAME,
    DB_QUERY_TEXT,
    DB_RESPONSE_STATUS_CODE,
    DB_SYSTEM_NAME,
    DJANGO_DB_SYSTEMS,
    SERVER_ADDRESS,
    SERVER_PORT,
    TRACING_APP_DB_QUERY_IN_LIST_SIZE,
)

SYSTEMS = DJANGO_DB_SYSTEMS

# Savepoints are Django's transaction bookkeeping (every nested atomic() and
# every test case makes them): three spans per block that say nothing about the
# work, so they are not traced (statements.HOUSEKEEPING). So is the BEGIN that
# Django's SQLite backend sends through a cursor for each atomic() (PostgreSQL's
# driver begins implicitly, and COMMIT goes past execute wrappers on every
# backend): without it the same code would make different trees on the two backends.
STATEMENTS = StatementCache()


def _record_failure(span: trace.Span, exc: BaseException) -> None:
    # Django re-raises driver errors as django.db.utils.*Error; the driver's own
    # class (UndefinedTable, UniqueViolation, AdminShutdown) says more.
    cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
    privacy.record_error(span, exc, error_type=type(cause).__qualname__, status=type(cause).__name__)
    sqlstate = getattr(cause, "sqlstate", None)
    if isinstance(sqlstate, str):
        span.set_attribute(DB_RESPONSE_STATUS_CODE, sqlstate)


class QueryTracer:
    """The execute wrapper added to each connection."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.attributes: dict[str, Any] = {}
        self.refresh(connection)

    def refresh(self, connection: BaseDatabaseWrapper) -> None:
        """Read the connection's settings again: test runners rename the database."""
        settings = connection.settings_dict
        self.attributes: dict[str, Any] = {DB_SYSTEM_NAME: SYSTEMS.get(connection.vendor, connection.vendor)}
        self.backslash_escapes = connection.vendor == "mysql"
        fields = integration.sql_commenter_fields
        self.commenter = Commenter(fields, getattr(connection, "Database", None)) if fields else None
        if settings.get("NAME"):
            self.attributes[DB_NAMESPACE] = str(settings["NAME"])
        if settings.get("HOST"):
            self.attributes[SERVER_ADDRESS] = str(settings["HOST"])
        if str(settings.get("PORT") or "").isdigit():
            self.attributes[SERVER_PORT] = int(settings["PORT"])

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict) -> Any:
        if not integration.installed:
            return execute(sql, params, many, context)
        tracer = get_tracer()
        current = current_context()  # read once, passed to each step below
        if drops_child_of_current(tracer, current):  # first: no span object at all under an unsampled request
            return execute(sql, params, many, context)
        if not isinstance(sql, str) or suppressed(current):
            return execute(sql, params, many, context)
        span = None
        try:  # safety.swallow, not guarded: this runs for every query (see safety.swallow)
            span = self._start(tracer, sql, params, many, current)
        except Exception as exc:
            swallow("starting a query span", exc)
        if span is None:
            return execute(sql, params, many, context)
        if self.commenter is not None and span.is_recording():  # sampled statements only (sqlcommenter.py)
            try:
                sql = self.commenter.append(sql, span.get_span_context(), params)
            except Exception as exc:
                swallow("adding a sqlcommenter comment", exc)
        token = attach(with_span(span, current))
        try:
            return execute(sql, params, many, context)
        except BaseException as exc:
            # BaseException too: a KeyboardInterrupt, a worker's soft time limit or a
            # cancelled async caller stops the query as surely as a driver error.
            try:
                _record_failure(span, exc)
            except Exception as failure:  # never instead of the query's own error
                swallow("recording a failed query", failure)
            raise
        finally:
            detach(token)
            try:  # a span processor that raises on end must not replace the query's result or error
                span.end()
            except Exception as failure:
                swallow("ending a query span", failure)

    def _start(self, tracer: trace.Tracer, sql: str, params: Any, many: bool,
               current: otel_context.Context) -> trace.Span | None:
        shape = STATEMENTS.get(sql, self.backslash_escapes, integration.max_length)
        if shape is None:
            return None
        running = work.current()
        if running is not None:  # repeated queries are flagged on the request's or task's span
            running.count(shape.text)
        attributes = {**self.attributes, DB_QUERY_TEXT: shape.text}
        if shape.operation:
            attributes[DB_OPERATION_NAME] = shape.operation
        if shape.collection:
            attributes[DB_COLLECTION_NAME] = shape.collection
        if shape.in_list_size:
            attributes[TRACING_APP_DB_QUERY_IN_LIST_SIZE] = shape.in_list_size
        if many and isinstance(params, (list, tuple)):
            attributes[DB_OPERATION_BATCH_SIZE] = len(params)
        elif shape.rows > 1:  # bulk_create: one INSERT of many rows, Django's batch of inserts
            attributes[DB_OPERATION_BATCH_SIZE] = shape.rows
        elif shape.unnest and params and isinstance(params[0], (list, tuple)) and len(params[0]) > 1:
            attributes[DB_OPERATION_BATCH_SIZE] = len(params[0])
        # start_span + attach instead of start_as_current_span: the same span and
        # context, without two generator-based context managers per query.
        return tracer.start_span(shape.span_name or attributes[DB_SYSTEM_NAME], context=current,
                                 kind=SpanKind.CLIENT, attributes=attributes)


class DatabaseIntegration(Integration):
    name = "database"

    def __init__(self) -> None:
        super().__init__()
        self.max_length = DEFAULT_MAX_LENGTH
        self.sql_commenter_fields: tuple[str, ...] = ()
        self._wrapped: weakref.WeakKeyDictionary[BaseDatabaseWrapper, QueryTracer] = weakref.WeakKeyDictionary()

    def _install(self, config: TracingConfig) -> None:
        from django.db import connections

        self.max_length = config.query_text_max_length
        self.sql_commenter_fields = tuple(config.sql_commenter_fields) if config.sql_commenter else ()
        STATEMENTS.clear()
        connection_created.connect(self._on_connection_created, weak=False,
                                   dispatch_uid="tracing_app.integrations.database")
        for connection in connections.all(initialized_only=True):
            self.wrap(connection)

    def _uninstall(self) -> None:
        connection_created.disconnect(dispatch_uid="tracing_app.integrations.database")
        for connection, tracer in list(self._wrapped.items()):
            if tracer in connection.execute_wrappers:
                connection.execute_wrappers.remove(tracer)
        self._wrapped.clear()

    def _on_connection_created(self, sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        self.wrap(connection)

    def wrap(self, connection: BaseDatabaseWrapper) -> None:
        # connection_created fires on every reconnect of the same wrapper object.
        existing = self._wrapped.get(connection)
        if existing is not None:
            existing.refresh(connection)
            return
        tracer = QueryTracer(connection)
        self._wrapped[connection] = tracer
        # Outermost wrapper: user wrappers added later (execute_wrapper()) run inside our span.
        connection.execute_wrappers.insert(0, tracer)


integration = DatabaseIntegration()
