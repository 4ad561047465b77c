from django.db import models


class Stock(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    quantity = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.sku}: {self.quantity}"
