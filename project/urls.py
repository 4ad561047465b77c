from django.http import HttpResponse
from django.urls import include, path


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/", include("apps.orders.urls")),
    path("api/", include("apps.pricing.urls")),
    path("api/", include("apps.inventory.urls")),
]
