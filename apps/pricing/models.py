from django.db import models


class Price(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    unit_price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="EUR")

    def __str__(self) -> str:
        return f"{self.sku}: {self.unit_price_cents} {self.currency} cents"
