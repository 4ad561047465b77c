"""The transactional outbox: ``write_event()`` inside ``transaction.atomic()`` stores an
event with the current trace context; ``manage.py relay_outbox`` publishes it."""

from tracing_app.outbox.relay import DEFAULT_EXCHANGE_TYPE, OutboxError, relay_pending, run_relay, write_event

__all__ = ["DEFAULT_EXCHANGE_TYPE", "OutboxError", "relay_pending", "run_relay", "write_event"]
