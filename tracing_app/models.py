"""Tables of tracing_app: the transactional outbox (see ``tracing_app.outbox``)
and the chord bookkeeping of the Celery integration (see ``celery_signals``)."""

from __future__ import annotations

import uuid

from django.db import models


class OutboxEvent(models.Model):
    """A message written in the business transaction and published later by ``relay_outbox``."""

    message_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    exchange = models.CharField(max_length=255)
    routing_key = models.CharField(max_length=255)
    payload = models.JSONField()
    headers = models.JSONField(default=dict, blank=True)
    # The propagation fields (traceparent, tracestate, baggage) of the span that wrote the event.
    trace_context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["id"], condition=models.Q(published_at__isnull=True), name="outbox_pending")]

    def __str__(self) -> str:
        return f"{self.routing_key} #{self.pk}"


class ChordHeaderRun(models.Model):
    """The span of one chord header task, kept until the chord callback links to it."""

    group_id = models.CharField(max_length=255, db_index=True)
    task_id = models.CharField(max_length=255)
    traceparent = models.CharField(max_length=55)
    created_at = models.DateTimeField(auto_now_add=True)
