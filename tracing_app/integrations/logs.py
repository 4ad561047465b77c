"""Log correlation: every log record carries the current trace and the service name.

Installed (integration ``logging``) through ``logging.setLogRecordFactory``, the
standard library's hook for adding fields to every record, whoever logs and
whichever handler formats it; ``uninstall()`` puts the previous factory back.
The fields are read when the record is created, so a record formatted later in
another thread (``QueueHandler``) still names the span it was logged in.

Fields: ``trace_id`` (32 hex), ``span_id`` (16 hex), ``trace_flags`` (``01``
sampled, ``00`` not) and ``service_name``. Outside a span they are empty strings,
never zero ids. ``TextFormatter`` and ``JsonFormatter`` print them; a ``trace_id``
can be pasted into Jaeger's search.

``opentelemetry-instrumentation-logging`` does the same job but writes ``"0"`` ids
outside a span and names the fields ``otelTraceID``…; ours keeps the issue's names
and empty values, in a few lines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from tracing_app.conf import TracingConfig
from tracing_app.context.business import UNTRACED_TRACE_ID
from tracing_app.context.propagators import current_span_context
from tracing_app.context.w3c import IS_VALID, SPAN_ID, TRACE_FLAGS, TRACE_ID
from tracing_app.integrations.base import Integration
from tracing_app.pipeline.resource import ROLES, process_role, service_name
from tracing_app.semconv import EXCEPTION_TYPE

FIELDS = ("trace_id", "span_id", "trace_flags", "service_name")
MAX_EVENT_MESSAGE = 1000
TEXT_FORMAT = ("%(asctime)s %(levelname)s %(name)s [%(service_name)s trace_id=%(trace_id)s "
               "span_id=%(span_id)s] %(message)s")


class LoggingIntegration(Integration):
    name = "logging"

    def __init__(self) -> None:
        super().__init__()
        self._previous: Callable[..., logging.LogRecord] | None = None
        self._factory: Callable[..., logging.LogRecord] | None = None

    def _install(self, config: TracingConfig) -> None:
        previous = logging.getLogRecordFactory()
        names = {role: service_name(config, role) for role in ROLES}  # the role may change (resource.py)
        errors_as_events = config.log_errors_as_events

        def record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if not self.installed:  # uninstalled while another factory wrapped ours: add nothing
                return record
            # The SpanContext tuple read by position (w3c.TRACE_ID...): this runs per log record.
            span_context = current_span_context()
            if span_context[IS_VALID] and span_context[TRACE_ID] != UNTRACED_TRACE_ID:
                record.trace_id = f"{span_context[TRACE_ID]:032x}"
                record.span_id = f"{span_context[SPAN_ID]:016x}"
                record.trace_flags = f"{span_context[TRACE_FLAGS]:02x}"
                if errors_as_events and record.levelno >= logging.ERROR:
                    span = trace.get_current_span()
                    if span.is_recording():
                        _add_event(span, record)
            else:
                record.trace_id = record.span_id = record.trace_flags = ""
            record.service_name = names[process_role()]
            return record

        self._previous, self._factory = previous, record_factory
        logging.setLogRecordFactory(record_factory)

    def _uninstall(self) -> None:
        if logging.getLogRecordFactory() is self._factory:
            logging.setLogRecordFactory(self._previous)
        else:
            # Someone wrapped our factory after us: unwinding theirs would lose their fields.
            logging.getLogger(__name__).warning("tracing_app: log record factory replaced by another; left in place")
        self._previous = self._factory = None


integration = LoggingIntegration()


def _add_event(span: trace.Span, record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:
        message = str(record.msg)
    attributes = {"log.severity": record.levelname, "log.logger": record.name,
                  "log.message": message[:MAX_EVENT_MESSAGE]}
    if record.exc_info and record.exc_info[0] is not None:
        attributes[EXCEPTION_TYPE] = record.exc_info[0].__qualname__
    span.add_event("log", attributes)


def _ensure_fields(record: logging.LogRecord) -> None:
    # A record made before tracing was installed (or with it off) has no fields.
    for field in FIELDS:
        if not hasattr(record, field):
            setattr(record, field, "")


class TextFormatter(logging.Formatter):
    """Plain text with the trace fields; the default format is ``TEXT_FORMAT``."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: str = "%", **kwargs: Any) -> None:
        super().__init__(fmt or TEXT_FORMAT, datefmt, style, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        _ensure_fields(record)
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        _ensure_fields(record)
        line: dict[str, Any] = {
            "time": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service.name": record.service_name,
            "trace_id": record.trace_id,
            "span_id": record.span_id,
            "trace_flags": record.trace_flags,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
