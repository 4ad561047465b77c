from django.db import models


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RESERVED = "reserved"
        REJECTED = "rejected"

    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    # Quoted by the pricing service when the order is taken, fixed when stock is
    # reserved. None while pricing could not be reached ("price pending").
    total_cents = models.PositiveBigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="", db_default="")

    def as_json(self) -> dict:
        return {"id": self.pk, "sku": self.sku, "quantity": self.quantity, "status": self.status,
                "total_cents": self.total_cents, "currency": self.currency or None}
