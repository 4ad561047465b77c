"""System checks: every TRACING problem gets a stable id and a hint.

| id | what |
|----|------|
| tracing_app.E001 | TRACING is not a dict |
| tracing_app.E002 | TRACING has an unknown key |
| tracing_app.E003 | a TRACING value is invalid |
| tracing_app.E004 | an OTEL_* environment variable is invalid |
| tracing_app.E005 | a propagator name cannot be loaded |
| tracing_app.E006 | a library something switched on needs is missing or too old (see integrations) |
| tracing_app.E007 | TRACING["BAGGAGE_RESOLVER"] cannot be imported or is not callable |
| tracing_app.W001 | the django integration is enabled but TracingMiddleware is not in MIDDLEWARE |
| tracing_app.W002 | TracingMiddleware is not the first middleware |
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from tracing_app.conf import get_config
from tracing_app.conf.requirements import OTLP_GRPC, install_hint, unmet
from tracing_app.integrations import REGISTRY, wanted_but_unmet
from tracing_app.pipeline.provider import load_propagator

MIDDLEWARE_PATH = "tracing_app.TracingMiddleware"  # what the hints tell users to write


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
    for name, entry in REGISTRY.items():
        why = wanted_but_unmet(config, name)
        if why is not None:
            messages.append(checks.Error(
                f"The {name} integration is enabled but {why}.",
                hint=f"Install {install_hint(entry.requires)}, or set TRACING['INTEGRATIONS'] = {{{name!r}: False}}.",
                id="tracing_app.E006",
            ))
    messages.extend(_check_exporter_libraries(config))
    return messages


def _check_exporter_libraries(config: Any) -> list[checks.CheckMessage]:
    # OTLP_PROTOCOL="grpc" is always the user's choice (the default is http/protobuf), so
    # its libraries are required, like an integration switched on explicitly.
    if not config.enabled or config.exporter != "otlp" or config.otlp_protocol != "grpc":
        return []
    why = unmet(OTLP_GRPC)
    if why is None:
        return []
    return [checks.Error(
        f"OTLP_PROTOCOL is 'grpc' but {why}.",
        hint=f"Install the grpc extra ({install_hint(OTLP_GRPC)}), or use OTLP_PROTOCOL 'http/protobuf' (port 4318).",
        id="tracing_app.E006",
    )]


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
    middleware = [_is_tracing_middleware(path) for path in getattr(settings, "MIDDLEWARE", None) or []]
    if not any(middleware):
        return [checks.Warning(
            "HTTP requests are not traced: TracingMiddleware is not in MIDDLEWARE.",
            hint=f"Add {MIDDLEWARE_PATH!r} as the first entry of MIDDLEWARE.",
            id="tracing_app.W001",
        )]
    if not middleware[0]:
        return [checks.Warning(
            "TracingMiddleware is not the first middleware, so the request span misses the time spent before it.",
            hint=f"Move {MIDDLEWARE_PATH!r} to the top of MIDDLEWARE.",
            id="tracing_app.W002",
        )]
    return []


def _is_tracing_middleware(path: Any) -> bool:
    """Whether the MIDDLEWARE entry ``path`` is TracingMiddleware, a subclass or a re-export
    of it: compared by class, not by its dotted path. An entry that does not import is
    Django's own error to report, not ours."""
    from tracing_app.integrations.django.middleware import TracingMiddleware

    try:
        found = import_string(path) if isinstance(path, str) else None
    except ImportError:
        return False
    return isinstance(found, type) and issubclass(found, TracingMiddleware)
