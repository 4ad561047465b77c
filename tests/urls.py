"""Small views for the HTTP middleware tests."""

from django.http import HttpResponse
from django.urls import include, path


def ok(request):
    return HttpResponse("ok")


def item(request, pk):
    return HttpResponse(f"item {pk}")


def boom(request):
    raise RuntimeError("kaboom")


def server_error(request):
    return HttpResponse("unavailable", status=503)


urlpatterns = [
    path("healthz", ok),
    path("ok/", ok),
    path("shop/", include([path("items/<int:pk>/", item)])),
    path("boom/", boom),
    path("unavailable/", server_error),
]
