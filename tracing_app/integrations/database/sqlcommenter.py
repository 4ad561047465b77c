"""sqlcommenter: the trace context appended to each statement as a comment, so that
PostgreSQL's own views (``pg_stat_activity.query``) and logs (the slow-query log,
``auto_explain``) name the trace and span a statement belongs to.

Format (https://google.github.io/sqlcommenter/spec/): ``key='value'`` pairs sorted by
key, joined by ``,``, in one ``/*...*/`` at the end of the statement (before a
final ``;``); keys and values URL-encoded, ``'`` in values escaped as ``\\'``. A
statement that already holds a comment is left alone, as the specification asks.
When the driver formats parameters into the statement (``params`` given), ``%`` in
the comment is doubled so it is not read as a placeholder.

Off by default (``TRACING["SQL_COMMENTER"]``): every statement text becomes unique,
which defeats statement caches keyed by text (psycopg's automatic prepared
statements, pgbouncer's prepared-statement tracking, ``pg_stat_statements`` keeps
the first text it saw per query id). Only statements of sampled spans get a comment.

The comment is our own few lines rather than ``opentelemetry-instrumentation-dbapi``'s
sqlcommenter, which hooks the driver's cursor (not Django's execute wrappers that
trace our queries) and would name a span of its own rather than ours.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import django
from opentelemetry import trace

from tracing_app.context import work
from tracing_app.context.w3c import format_traceparent


def _encoded(value: str) -> str:
    return "'" + quote(value, safe="").replace("'", "\\'") + "'"


class Commenter:
    """The comment for each statement on one connection, with the ``fields`` asked for."""

    def __init__(self, fields: tuple[str, ...], driver: Any) -> None:
        self.fields = frozenset(fields)
        self.static: dict[str, str] = {}
        if "framework" in self.fields:
            self.static["framework"] = _encoded(f"django:{django.get_version()}")
        if "db_driver" in self.fields and driver is not None:
            name = getattr(driver, "__name__", "")
            version = getattr(driver, "__version__", "") or getattr(driver, "version", "")
            self.static["db_driver"] = _encoded(f"{name}:{version}" if version else name)

    def comment(self, span_context: trace.SpanContext) -> str:
        pairs = dict(self.static)
        if "traceparent" in self.fields:
            pairs["traceparent"] = _encoded(format_traceparent(span_context))
        if "tracestate" in self.fields and span_context.trace_state:
            pairs["tracestate"] = _encoded(span_context.trace_state.to_header())
        if "route" in self.fields or "controller" in self.fields:
            current = work.current()
            if current is not None and current.route and "route" in self.fields:
                pairs["route"] = _encoded(current.route)
            if current is not None and current.controller and "controller" in self.fields:
                pairs["controller"] = _encoded(current.controller)
        return "/*" + ",".join(f"{key}={pairs[key]}" for key in sorted(pairs)) + "*/"

    def append(self, sql: str, span_context: trace.SpanContext, params: Any) -> str:
        """``sql`` with the comment, or unchanged when it holds a comment already."""
        if "/*" in sql or "--" in sql:
            return sql
        comment = self.comment(span_context)
        if params is not None:
            comment = comment.replace("%", "%%")
        stripped = sql.rstrip()
        if stripped.endswith(";"):
            return f"{stripped[:-1]} {comment};"
        return f"{stripped} {comment}"
