from django.db import models


class Notification(models.Model):
    """One message to a customer, written when an event arrives. ``event_id`` makes redelivery harmless."""

    event_id = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=64)
    order_id = models.BigIntegerField(null=True)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.text
