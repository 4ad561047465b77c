"""The demo's API keys: ``Authorization: Bearer <key>`` names a user of a tenant.

A stand-in for real authentication (sessions, OAuth, …): it sets ``request.user``
and ``request.tenant_id``, which tracing_app's default business-context resolver
reads, so spans in the web and the worker carry ``enduser.id`` and ``tenant.id``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse


@dataclasses.dataclass(frozen=True)
class ApiUser:
    pk: str
    username: str
    email: str
    is_authenticated = True
    is_anonymous = False


class ApiKeyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        account = settings.DEMO_API_KEYS.get(key) if scheme.lower() == "bearer" else None
        if account is None:
            request.user = AnonymousUser()
        else:
            request.user = ApiUser(pk=account["user"], username=account["username"], email=account["email"])
            request.tenant_id = account["tenant"]
        return self.get_response(request)
