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

    def as_json(self) -> dict:
        return {"id": self.pk, "sku": self.sku, "quantity": self.quantity, "status": self.status}
