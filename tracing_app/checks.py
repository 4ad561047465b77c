"""System checks: every TRACING problem gets a stable id and a hint.

| id | what |
|----|------|
| tracing_app.E001 | TRACING is not a dict |
| tracing_app.E002 | TRACING has an unknown key |
| tracing_app.E003 | a TRACING value is invalid |
| tracing_app.E004 | an OTEL_* environment variable is invalid |
| tracing_app.E005 | a propagator name cannot be loaded |
| tracing_app.E006 | an integration is enabled but its library is not installed |
| tracing_app.E007 | TRACING["BAGGAGE_RESOLVER"] cannot be imported or is not callable |
| tracing_app.W001 | the django integration is enabled but TracingMiddleware is not in MIDDLEWARE |
| tracing_app.W002 | TracingMiddleware is not the first middleware |
"""

from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from .conf import get_config
from .provider import load_propagator

MIDDLEWARE_PATH = "tracing_app.middleware.TracingMiddleware"
# INTEGRATIONS name -> the module(s) its library provides. Enabled without them,
# the integration is reported here (E006) and skipped by install_enabled().
INTEGRATION_LIBRARIES: dict[str, str | tuple[str, ...]] = {
    "celery": ("celery",),
    "grpc": ("grpc",),
    "http_client": ("requests", "opentelemetry.instrumentation.requests"),
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def missing_library(integration: str) -> str | None:
    """The first module the integration needs that cannot be imported, or None."""
    modules = INTEGRATION_LIBRARIES.get(integration, ())
    modules = (modules,) if isinstance(modules, str) else modules
    return next((m for m in modules if not _importable(m)), None)


def library_installed(integration: str) -> bool:
    return missing_library(integration) is None


@checks.register("tracing_app")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    config = get_config()
    messages: list[checks.CheckMessage] = [
        checks.Error(problem.message, hint=problem.hint, id=problem.check_id) for problem in config.problems
    ]
    for name in config.propagators:
        try:
            load_propagator(name)
        except Exception as exc:
            messages.append(checks.Error(
                f"Propagator {name!r} cannot be loaded: {exc}.",
                hint="Use tracecontext and baggage, or install the package that provides it.",
                id="tracing_app.E005",
            ))
    for name in INTEGRATION_LIBRARIES:
        module = missing_library(name) if config.integration_enabled(name) else None
        if module is not None:
            messages.append(checks.Error(
                f"The {name} integration is enabled but {module!r} is not installed.",
                hint=f"Install the package that provides {module}, "
                     f"or set TRACING['INTEGRATIONS'] = {{{name!r}: False}}.",
                id="tracing_app.E006",
            ))
    return messages


@checks.register("tracing_app")
def check_baggage_resolver(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    path = get_config().baggage_resolver
    if not path:
        return []
    try:
        resolver = import_string(path)
    except ImportError as exc:
        problem = f"cannot be imported: {exc}"
    else:
        if callable(resolver):
            return []
        problem = "is not callable"
    return [checks.Error(
        f"TRACING['BAGGAGE_RESOLVER'] {path!r} {problem}.",
        hint="Give the dotted path of a function resolver(request) -> dict, or '' for no business context.",
        id="tracing_app.E007",
    )]


@checks.register("tracing_app")
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    config = get_config()
    if not config.integration_enabled("django"):
        return []
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE_PATH not in middleware:
        return [checks.Warning(
            "HTTP requests are not traced: TracingMiddleware is not in MIDDLEWARE.",
            hint=f"Add {MIDDLEWARE_PATH!r} as the first entry of MIDDLEWARE.",
            id="tracing_app.W001",
        )]
    if middleware[0] != MIDDLEWARE_PATH:
        return [checks.Warning(
            "TracingMiddleware is not the first middleware, so the request span misses the time spent before it.",
            hint=f"Move {MIDDLEWARE_PATH!r} to the top of MIDDLEWARE.",
            id="tracing_app.W002",
        )]
    return []
