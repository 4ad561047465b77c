"""The demo's API keys: ``Authorization: Bearer <key>`` names a user of a tenant.

A stand-in for real authentication (sessions, OAuth, …): it sets ``request.user``
and ``request.tenant_id``, which tracing_app's default business-context resolver
reads, so spans in the web and the worker carry ``enduser.id`` and ``tenant.id``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
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
    """Sync- and async-capable (Django's middleware "Asynchronous support"): under ASGI the
    chain stays in the event loop."""

    sync_capable = async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        authenticate(request)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        authenticate(request)
        return await self.get_response(request)


def authenticate(request: HttpRequest) -> None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    account = settings.DEMO_API_KEYS.get(key) if scheme.lower() == "bearer" else None
    if account is None:
        request.user = AnonymousUser()
    else:
        request.user = ApiUser(pk=account["user"], username=account["username"], email=account["email"])
        request.tenant_id = account["tenant"]
