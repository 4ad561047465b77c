"""System checks: every TRACING problem gets a stable id and a hint.

| id | what |
|----|------|
| tracing_app.E001 | TRACING is not a dict |
| tracing_app.E002 | TRACING has an unknown key |
| tracing_app.E003 | a TRACING value is invalid |
| tracing_app.W004 | an OTEL_* environment variable is invalid, so it is ignored (treated as unset) |
| tracing_app.E005 | a propagator name in TRACING cannot be loaded (from OTEL_PROPAGATORS: W004) |
| tracing_app.E006 | a library something switched on needs is missing or too old (see integrations) |
| tracing_app.E007 | TRACING["BAGGAGE_RESOLVER"] cannot be imported or is not callable |
| tracing_app.E008 | the OTLP/HTTP endpoint has no scheme (`127.0.0.1:4318`) |
| tracing_app.E009 | the OTLP endpoint is not an http:// or https:// URL with a host (other scheme, bad port) |
| tracing_app.E010 | the OTLP endpoint's port is a known non-OTLP port (Jaeger Thrift/UI, Zipkin) |
| tracing_app.E011 | the OTLP endpoint's port is the other protocol's (grpc on 4318, http/protobuf on 4317) |
| tracing_app.W003 | the base OTLP endpoint has a path (tracing_app adds /v1/traces itself) |
| tracing_app.W001 | the django integration is enabled but TracingMiddleware is not in MIDDLEWARE |
| tracing_app.W002 | TracingMiddleware is not the first middleware |
| tracing_app.W005 | a library an enabled integration uses is newer than the releases it is tested with |
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from tracing_app.conf import get_config
from tracing_app.conf.config import ENV_IGNORED
from tracing_app.conf.requirements import OTLP_GRPC, install_hint, unmet, untested
from tracing_app.integrations import REGISTRY, wanted_but_unmet
from tracing_app.pipeline.provider import load_propagator

MIDDLEWARE_PATH = "tracing_app.TracingMiddleware"  # what the hints tell users to write


@checks.register("tracing_app")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    config = get_config()
    messages: list[checks.CheckMessage] = [
        (checks.Warning if problem.check_id.startswith("tracing_app.W") else checks.Error)(
            problem.message, hint=problem.hint, id=problem.check_id)
        for problem in config.problems
    ]
    from_environment = config.sources["PROPAGATORS"] == "env:OTEL_PROPAGATORS"
    for name in config.propagators:
        try:
            load_propagator(name)
        except Exception as exc:
            # An unknown Enum value in a variable is a warning and is ignored (the specification).
            messages.append((checks.Warning if from_environment else checks.Error)(
                f"Propagator {name!r} cannot be loaded: {exc}."
                + (" It is ignored (OTEL_PROPAGATORS)." if from_environment else ""),
                hint="Use tracecontext and baggage (or none), or install the package that provides it.",
                id=ENV_IGNORED if from_environment else "tracing_app.E005",
            ))
    for name, entry in REGISTRY.items():
        why = wanted_but_unmet(config, name)
        if why is not None:
            messages.append(checks.Error(
                f"The {name} integration is enabled but {why}.",
                hint=f"Install {install_hint(entry.requires)}, or set TRACING['INTEGRATIONS'] = {{{name!r}: False}}.",
                id="tracing_app.E006",
            ))
        elif config.integration_enabled(name) and unmet(entry.requires) is None:
            newer = untested(entry.requires)
            if newer is not None:
                messages.append(checks.Warning(
                    f"The {name} integration is enabled and {newer}: it may trace wrongly or fail to install.",
                    hint="Use a tested release (README: Tested versions), or look for a newer tracing_app.",
                    id="tracing_app.W005",
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


# Ports that collectors and Jaeger/Zipkin listen on but that do not take OTLP: what each is.
NOT_OTLP_PORTS = {
    14268: "Jaeger's legacy Thrift HTTP collector port",
    14250: "Jaeger's legacy model.proto gRPC collector port",
    14269: "Jaeger's admin (health, metrics) port",
    9411: "the Zipkin port",
    16686: "the Jaeger UI port",
    5778: "Jaeger's sampling configuration port",
    6831: "Jaeger's Thrift compact UDP agent port",
    6832: "Jaeger's Thrift binary UDP agent port",
}
OTLP_PORTS = {"http/protobuf": 4318, "grpc": 4317}


def _url_to_write(endpoint: str, protocol: str) -> str:
    """E008's hint: the endpoint with a scheme, and with the protocol's OTLP port when the
    port given is one E010 or E011 would refuse (``localhost:14268`` → ``http://localhost:4318``),
    so that the URL suggested passes the other checks too. Any other port is kept: a collector
    may listen anywhere."""
    address = endpoint.strip("/")
    try:
        given_port = urllib.parse.urlsplit(f"//{address}").port
    except ValueError:
        given_port = None
    port = OTLP_PORTS[protocol]
    other = {OTLP_PORTS[name]: f"the {name} port" for name in OTLP_PORTS if name != protocol}
    what = NOT_OTLP_PORTS.get(given_port) or other.get(given_port)  # type: ignore[arg-type]
    if what is None:
        return f"Write it as a URL: 'http://{address}' (or https:// when the collector uses TLS)."
    host = address.split("/", 1)[0].rsplit(":", 1)[0]
    return (f"Write it as a URL with the {protocol} port: 'http://{host}:{port}' (or https:// when the "
            f"collector uses TLS); port {given_port} is {what}.")


@checks.register("tracing_app")
def check_otlp_endpoint(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The OTLP endpoint is a URL the exporter can use (OpenTelemetry's exporter specification:
    ``http``/``https`` scheme; the base endpoint gets ``/v1/traces`` appended, the
    signal-specific ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as it is)."""
    config = get_config()
    endpoint = config.otlp_endpoint
    if not config.enabled or config.exporter != "otlp" or not endpoint:
        return []
    source = config.sources["OTLP_ENDPOINT"]
    where = source.removeprefix("env:") if source.startswith("env:") else "TRACING['OTLP_ENDPOINT']"
    protocol = config.otlp_protocol
    port = OTLP_PORTS[protocol]
    if "://" not in endpoint:
        if protocol == "grpc":
            return []  # a gRPC target may go without a scheme; OTLP_INSECURE then says whether TLS is used
        return [checks.Error(
            f"The OTLP endpoint {endpoint!r} ({where}) has no scheme, so no span can be sent.",
            hint=_url_to_write(endpoint, protocol),
            id="tracing_app.E008",
        )]
    parts = urllib.parse.urlsplit(endpoint)
    try:
        given_port = parts.port
    except ValueError:
        given_port, bad_port = None, True
    else:
        bad_port = False
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or bad_port:
        why = ("its port is not a number" if bad_port else "it has no host" if not parts.hostname
               else f"its scheme is {parts.scheme!r}")
        return [checks.Error(
            f"The OTLP endpoint {endpoint!r} ({where}) is not an http:// or https:// URL: {why}.",
            hint=f"OTLP is sent over HTTP or gRPC, both addressed as http://host:port (https:// with TLS), "
                 f"e.g. 'http://localhost:{port}' for {protocol}.",
            id="tracing_app.E009",
        )]
    messages: list[checks.CheckMessage] = []
    if given_port in NOT_OTLP_PORTS:
        messages.append(checks.Error(
            f"The OTLP endpoint {endpoint!r} ({where}) uses port {given_port}, {NOT_OTLP_PORTS[given_port]}; "
            "it does not receive OTLP.",
            hint=f"OTLP goes to port 4318 (http/protobuf) or 4317 (grpc); with OTLP_PROTOCOL {protocol!r}: "
                 f"'{parts.scheme}://{parts.hostname}:{port}'.",
            id="tracing_app.E010",
        ))
    other = {OTLP_PORTS[name]: name for name in OTLP_PORTS if name != protocol}
    if given_port in other:
        messages.append(checks.Error(
            f"The OTLP endpoint {endpoint!r} ({where}) uses port {given_port}, the {other[given_port]} port, "
            f"but the protocol is {protocol}.",
            hint=f"Use port {port} for {protocol}, or set OTLP_PROTOCOL (OTEL_EXPORTER_OTLP_PROTOCOL) "
                 f"to {other[given_port]!r}.",
            id="tracing_app.E011",
        ))
    if parts.path.strip("/") and source != "env:OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":
        hint = (f"A gRPC endpoint has no path: write '{parts.scheme}://{parts.netloc}'." if protocol == "grpc" else
                f"It is a base URL: tracing_app adds /v1/traces itself. Write '{parts.scheme}://{parts.netloc}', "
                "or give the full URL in OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, which is used as it is.")
        messages.append(checks.Warning(
            f"The OTLP base endpoint {endpoint!r} ({where}) has a path ({parts.path!r}); "
            f"spans go to {config.traces_endpoint!r}.",
            hint=hint,
            id="tracing_app.W003",
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
