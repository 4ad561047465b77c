"""Small views for the HTTP middleware tests."""

import json

import requests
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


def ok(request):
    return HttpResponse("ok")


def item(request, pk):
    return HttpResponse(f"item {pk}")


def boom(request):
    raise RuntimeError("kaboom")


def server_error(request):
    return HttpResponse("unavailable", status=503)


@csrf_exempt
def call_out(request):
    """POSTs to every URL in the JSON list it is given, as the W3C trace-context test service does."""
    for url in json.loads(request.body or b"[]"):
        requests.post(url, timeout=10)
    return HttpResponse(status=204)


urlpatterns = [
    path("call-out/", call_out),
    path("healthz", ok),
    path("ok/", ok),
    path("shop/", include([path("items/<int:pk>/", item)])),
    path("boom/", boom),
    path("unavailable/", server_error),
]
