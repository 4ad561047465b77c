"""Small views for the HTTP middleware tests."""

import json

import requests
from django.conf.urls.i18n import i18n_patterns
from django.core.exceptions import BadRequest, PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import include, path, re_path
from django.views import View
from django.views.decorators.csrf import csrf_exempt


def ok(request):
    return HttpResponse("ok")


def item(request, pk, **parents):
    return HttpResponse(f"item {pk}")


def archive(request, year):
    return HttpResponse(f"archive {year}")


def timed(request):
    response = HttpResponse("timed")
    response["Server-Timing"] = 'db;dur=53, cache;desc="Cache Read";dur=23.2'
    return response


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


def raises(exception):
    def view(request, **kwargs):
        raise exception("refused")
    return view


class Resource(View):
    def get(self, request):
        return HttpResponse("resource")


urlpatterns = [
    path("call-out/", call_out),
    path("healthz", ok),
    path("async/", include("tests.async_views")),
    path("ok/", ok),
    path("timed/", timed),
    path("shop/", include([path("items/<int:pk>/", item)])),
    path("boom/", boom),
    path("unavailable/", server_error),
    path("resource/", Resource.as_view()),
    path("missing/<slug:name>/", raises(Http404)),
    path("forbidden/", raises(PermissionDenied)),
    path("bad/", raises(BadRequest)),
    path("suspicious/", raises(SuspiciousOperation)),
    path("too-big/", raises(RequestDataTooBig)),
    path("multipart/", raises(MultiPartParserError)),
    re_path(r"^legacy/(?P<year>[0-9]{4})/$", archive),
    re_path(r"^catalog/", include([
        re_path(r"^(?P<pk>\d+)/$", item),
        path("sections/<str:section>/", include([path("pages/<int:pk>/", item)])),
    ])),
    *i18n_patterns(path("about/<int:pk>/", item), prefix_default_language=True),
]
