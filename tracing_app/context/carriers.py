"""Carriers: where trace context travels in a message. ``KombuHeadersCarrier`` reads
and writes it in a kombu message's application headers (AMQP headers on RabbitMQ,
the message's ``headers`` field on other transports) in every field type an AMQP
publisher in another language sends them as; ``extract()`` also says why a message
carries no usable context (never quoting a header's value); ``messaging_system()``
names the transport a message travels on, for ``messaging.system``.

OpenTelemetry has no kombu instrumentation to reuse (``opentelemetry-instrumentation-celery``
only covers Celery tasks); this carrier is the small piece it lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter

from tracing_app.context.w3c import MAX_HEADER_LINES, TRACEPARENT, parse_traceparent

# W3C limits: tracestate has at most 32 members of at most 256 characters
# (about 8 KB), baggage at most 8192 bytes. Longer values are an attack or a bug.
MAX_HEADER_CHARS = 8192
# The AMQP field types a trace header plausibly arrives as. ``str``: a long string
# ('S'), what kombu, Celery and most clients send. ``bytes``: a byte array ('x'), as
# the Java, .NET and Go clients and pika send a ``byte[]``/``bytes`` value, and
# py-amqp's reading of an 'S' that is not UTF-8. ``bytearray``/``memoryview``: the
# same bytes as other Python code holds them. A field array ('A') of those: one
# value per line, like repeated HTTP header lines (a bridge from HTTP sends them so);
# the propagators join the lines with commas, so two traceparents are invalid as in
# HTTP. Bytes are read as UTF-8 (W3C headers are ASCII). Numbers, decimals,
# timestamps, tables, booleans and void are never trace context: not read.
BINARY_TYPES = (bytes, bytearray, memoryview)


def _text(value: Any) -> str | None:
    """``value`` as text when it is a string or bytes of at most ``MAX_HEADER_CHARS``, else None."""
    if isinstance(value, BINARY_TYPES):
        if len(value) > MAX_HEADER_CHARS * 4:  # not worth decoding: too long whatever it holds
            return None
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str) and len(value) <= MAX_HEADER_CHARS:
        return value
    return None


def header_lines(value: Any) -> list[str] | None:
    """The lines of text of one header value in any field type above, or None when it holds none."""
    if isinstance(value, (list, tuple)):
        if not value or len(value) > MAX_HEADER_LINES:
            return None
        lines = [_text(item) for item in value]
        return None if None in lines else lines  # type: ignore[return-value]
    text = _text(value)
    return None if text is None else [text]


def _value_problem(value: Any) -> str:
    """Why one header value is not read (never quoting it), or ""."""
    if isinstance(value, (list, tuple)):
        if not value or len(value) > MAX_HEADER_LINES:
            return f"is a list of {len(value)} values (1 to {MAX_HEADER_LINES} are read)"
        for item in value:
            if isinstance(item, (list, tuple)):
                return "is a list holding lists"
            problem = _value_problem(item)
            if problem:
                return f"holds a value that {problem}"
        return ""
    if isinstance(value, BINARY_TYPES):
        if len(value) > MAX_HEADER_CHARS * 4:
            return f"is {len(value)} bytes long (at most {MAX_HEADER_CHARS} characters)"
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return f"is a {type(value).__name__} that is not UTF-8 text"
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not text"
    if len(value) > MAX_HEADER_CHARS:
        return f"is {len(value)} characters long (at most {MAX_HEADER_CHARS})"
    return ""


class KombuHeadersCarrier(Getter[Mapping[str, Any]], Setter[dict]):
    """Reads and writes propagation fields in a kombu message's ``headers`` dict.

    Use it with any OpenTelemetry propagator::

        propagate.inject(headers, setter=CARRIER)
        ctx = propagate.extract(message.headers, getter=CARRIER)

    Reads every field type listed at ``BINARY_TYPES`` (text, bytes, a list of
    them); other types and values longer than ``MAX_HEADER_CHARS`` are not read:
    the propagator sees them as absent. Writes text.
    """

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        if not isinstance(carrier, Mapping):
            return None
        value = carrier.get(key)
        return None if value is None else header_lines(value)

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [key for key in carrier if isinstance(key, str)] if isinstance(carrier, Mapping) else []

    def set(self, carrier: dict, key: str, value: str) -> None:
        carrier[key] = value


CARRIER = KombuHeadersCarrier()


def extract(headers: Any) -> tuple[context.Context, str]:
    """(the context in ``headers``, "") or (an empty context, why ``headers`` carry no usable one).

    The reason names the header and what is wrong with it, never its value."""
    if not isinstance(headers, Mapping) or TRACEPARENT not in headers:
        return context.Context(), "no traceparent header"
    for key in propagate.get_global_textmap().fields:
        if key in headers:
            problem = _value_problem(headers[key])
            if problem:
                return context.Context(), f"header {key!r} {problem}"
    lines = header_lines(headers[TRACEPARENT]) or []
    if len(lines) != 1:
        return context.Context(), f"traceparent has {len(lines)} values (one is allowed)"
    # The one W3C codec decides, so a message is read as an HTTP request is (a later
    # version's extra fields accepted, uppercase hex and version ff refused).
    if parse_traceparent(lines[0]) is None:
        return context.Context(), f"traceparent is malformed or has an all-zero id ({len(lines[0])} characters)"
    found = propagate.extract(headers, getter=CARRIER, context=context.Context())
    if not trace.get_current_span(found).get_span_context().is_valid:
        return context.Context(), "traceparent is not a valid span context"
    return found, ""


# kombu transport (its ``driver_type``) -> ``messaging.system``. The semantic conventions'
# well-known value where one exists; otherwise kombu's own name for the transport
# ("redis", "filesystem", "memory", ...): ``messaging.system`` is an open enum (custom
# values are allowed when no well-known one applies), it has no value for Redis, and
# "redis" is also what ``db.system.name`` calls it.
_WELL_KNOWN_SYSTEMS = {"amqp": "rabbitmq", "sqs": "aws_sqs", "kafka": "kafka", "gcpubsub": "gcp_pubsub",
                       "azureservicebus": "servicebus"}
RABBITMQ = "rabbitmq"
# Where the kombu Connection's transport is, from: a Connection; a Producer; a Channel
# (py-amqp's and virtual transports' both keep the kombu Connection as ``client``); a Message.
_TRANSPORT_PATHS = (("transport",), ("connection", "transport"), ("connection", "client", "transport"),
                    ("channel", "connection", "client", "transport"))


def messaging_system(source: Any) -> str:
    """``messaging.system`` for the transport behind ``source`` (a kombu Connection, Producer,
    Channel or Message): ``rabbitmq`` for AMQP, ``redis``, ``aws_sqs``, ... (table above);
    ``rabbitmq`` when it cannot be told."""
    for path in _TRANSPORT_PATHS:
        found = source
        try:
            for name in path:
                found = getattr(found, name)
        except Exception:  # noqa: BLE001 (AttributeError, or a lazy channel that cannot connect)
            continue
        driver = getattr(found, "driver_type", None)
        if isinstance(driver, str):
            return _WELL_KNOWN_SYSTEMS.get(driver, driver)
    return RABBITMQ
