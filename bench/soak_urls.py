"""The demo's URLs plus the soak benchmark's long statements (``bench.soak``)."""

from django.db import transaction
from django.http import JsonResponse
from django.urls import include, path

from apps.orders.models import Order


def long_statement(request):
    """One query over ``n`` ids (``... WHERE id IN (%s, %s, ...)``), as ``filter(id__in=...)``
    writes it, or with ``bulk=1`` a ``bulk_create`` of ``n // 10`` rows (``VALUES (...), ...``)
    rolled back so that the table does not grow."""
    n = max(1, min(int(request.GET.get("n", "100")), 50_000))
    if request.GET.get("bulk"):
        with transaction.atomic():
            Order.objects.bulk_create([Order(sku="soak", quantity=1) for _ in range(max(1, n // 10))])
            transaction.set_rollback(True)
        return JsonResponse({"inserted": n // 10})
    return JsonResponse({"found": Order.objects.filter(id__in=range(1, n + 1)).count()})


urlpatterns = [
    path("soak/long/", long_statement),
    path("", include("project.urls")),
]
