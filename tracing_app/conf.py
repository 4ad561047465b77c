"""Every ``TRACING`` key, its default, its meaning, and where its value came from.

Resolution order for each key, first hit wins:

1. the standard ``OTEL_*`` environment variable, when the key has one and it is set;
2. the project's ``settings.TRACING`` dict;
3. the default declared here.

``get_config()`` is cached and cleared when Django's ``setting_changed`` signal
reports a change to ``TRACING`` (tests use ``override_settings``). The user's dict
is read, never mutated. Bad values never raise here: they are collected in
``TracingConfig.problems`` and reported by the system checks in ``checks.py``,
while the value falls back to its default so the host app keeps running.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

SOURCE_DEFAULT = "default"
SOURCE_SETTINGS = "TRACING"

EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("http/protobuf", "grpc")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
DEFAULT_PORTS = {"http/protobuf": 4318, "grpc": 4317}


class InvalidValue(ValueError):
    """A setting's value that cannot be used; the message says why."""


# -- parsers: each takes a raw value (from settings or the environment) --------


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise InvalidValue(f"expected a boolean, got {value!r}")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _optional_text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidValue(f"expected a string, got {value!r}")
    return value.strip()


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in choices:
            raise InvalidValue(f"expected one of {', '.join(choices)}; got {value!r}")
        return text

    return parse


def _ratio(value: Any) -> float:
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise InvalidValue(f"expected a number from 0 to 1, got {value!r}") from None
    if not 0.0 <= ratio <= 1.0 or isinstance(value, bool):
        raise InvalidValue(f"expected a number from 0 to 1, got {value!r}")
    return ratio


def _positive(kind: type) -> Callable[[Any], int | float]:
    def parse(value: Any) -> int | float:
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise InvalidValue(f"expected a positive {kind.__name__}, got {value!r}") from None
        if number <= 0 or isinstance(value, bool):
            raise InvalidValue(f"expected a positive {kind.__name__}, got {value!r}")
        return number

    return parse


def _millis_to_seconds(value: Any) -> float:
    """OTEL_* timeouts and delays are milliseconds by the specification."""
    return _positive(float)(value) / 1000.0


def _pairs(value: Any) -> dict[str, str]:
    """A ``{"k": "v"}`` dict, or the ``k=v,k2=v2`` form the OTEL_* variables use."""
    if isinstance(value, Mapping):
        pairs = dict(value)
    elif isinstance(value, str):
        pairs = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, sep, val = item.partition("=")
            if not sep or not key.strip():
                raise InvalidValue(f"expected key=value pairs, got {item!r}")
            pairs[key.strip()] = val.strip()
    else:
        raise InvalidValue(f"expected a dict of strings, got {value!r}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()):
        raise InvalidValue(f"expected a dict of strings, got {value!r}")
    return pairs


def _names(value: Any) -> tuple[str, ...]:
    """A list of strings, or the comma-separated form the OTEL_* variables use."""
    if isinstance(value, str):
        return tuple(filter(None, (part.strip() for part in value.split(","))))
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidValue(f"expected a list of strings, got {value!r}")


def _patterns(value: Any) -> tuple[str, ...]:
    import re

    names = _names(value)
    for pattern in names:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InvalidValue(f"{pattern!r} is not a regular expression: {exc}") from None
    return names


def _integrations(value: Any) -> dict[str, bool]:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a dict of integration name to bool, got {value!r}")
    merged = dict(DEFAULT_INTEGRATIONS)
    for name, enabled in value.items():
        if name not in DEFAULT_INTEGRATIONS:
            raise InvalidValue(f"unknown integration {name!r}; known: {', '.join(DEFAULT_INTEGRATIONS)}")
        merged[name] = _bool(enabled)
    return merged


# -- parsers for business context, sampling and privacy (issue 6) ---------------

INCOMING_POLICIES = ("trust", "context", "link")
SAMPLING_RULE_FIELDS = ("path", "route", "route_name", "method", "task", "queue")
NEVER_ALLOWED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


# Our own services: compose/Kubernetes short names, localhost, internal domains, private networks.
DEFAULT_PROPAGATE_TO = (
    "<single-label>", "localhost", "*.local", "*.internal", "*.svc", "*.svc.cluster.local",
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
)


def _lower_names(value: Any) -> tuple[str, ...]:
    return tuple(name.lower() for name in _names(value))


def _headers(value: Any) -> tuple[str, ...]:
    names = _lower_names(value)
    secret = sorted(set(names) & NEVER_ALLOWED_HEADERS)
    if secret:
        raise InvalidValue(f"{', '.join(secret)} can never be recorded")
    return names


def _policy_routes(value: Any) -> tuple[tuple[str, str], ...]:
    """``{"/internal/": "trust", "/api/": "link"}`` (path prefix -> policy), first match wins."""
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and all(isinstance(i, (list, tuple)) and len(i) == 2 for i in value):
        items = [tuple(item) for item in value]
    else:
        raise InvalidValue(f"expected a dict of path prefix to policy, got {value!r}")
    routes = []
    for prefix, policy in items:
        if not isinstance(prefix, str) or policy not in INCOMING_POLICIES:
            raise InvalidValue(f"{prefix!r}: {policy!r} is not one of {', '.join(INCOMING_POLICIES)}")
        routes.append((prefix, policy))
    return tuple(routes)


def _host_patterns(value: Any) -> tuple[str, ...]:
    import ipaddress

    names = _lower_names(value)
    for name in names:
        if "/" in name:
            try:
                ipaddress.ip_network(name, strict=False)
            except ValueError:
                raise InvalidValue(f"{name!r} is not a network like 10.0.0.0/8") from None
    return names


def _sampling_rules(value: Any) -> tuple[Mapping[str, Any], ...]:
    """``[{"path": r"^/api/search", "method": "GET", "ratio": 0.1}, ...]``: every field given
    must match (regexes are searched; ``method`` and ``route_name`` compare exactly)."""
    import re

    if not isinstance(value, (list, tuple)):
        raise InvalidValue(f"expected a list of rule dicts, got {value!r}")
    rules = []
    for index, rule in enumerate(value):
        if not isinstance(rule, Mapping) or "ratio" not in rule:
            raise InvalidValue(f"rule {index} must be a dict with a 'ratio'")
        unknown = set(rule) - {"ratio", *SAMPLING_RULE_FIELDS}
        if unknown or not set(rule) & set(SAMPLING_RULE_FIELDS):
            raise InvalidValue(f"rule {index} needs one or more of {', '.join(SAMPLING_RULE_FIELDS)} "
                               f"and nothing else; got {sorted(rule)}")
        parsed = {"ratio": _ratio(rule["ratio"])}
        for field in SAMPLING_RULE_FIELDS:
            if field in rule:
                if not isinstance(rule[field], str):
                    raise InvalidValue(f"rule {index}: {field} must be a string")
                if field in ("path", "route", "task", "queue"):
                    try:
                        re.compile(rule[field])
                    except re.error as exc:
                        raise InvalidValue(
                            f"rule {index}: {rule[field]!r} is not a regular expression: {exc}") from None
                parsed[field] = rule[field].upper() if field == "method" else rule[field]
        rules.append(parsed)
    return tuple(rules)


def _sdk_disabled(value: Any) -> bool:
    """OTEL_SDK_DISABLED=true means ENABLED=False."""
    return not _bool(value)


DEFAULT_INTEGRATIONS = {
    "django": True,
    "celery": True,
    "database": True,
    "logging": True,
    # Synchronous service hops: gRPC interceptors and outgoing HTTP (requests).
    "grpc": True,
    "http_client": True,
}


@dataclasses.dataclass(frozen=True)
class Key:
    name: str
    default: Any
    parse: Callable[[Any], Any]
    doc: str
    env: tuple[str, ...] = ()
    env_parse: Callable[[Any], Any] | None = None


KEYS: tuple[Key, ...] = (
    Key("ENABLED", True, _bool, "Master switch. False: nothing is instrumented or exported.",
        env=("OTEL_SDK_DISABLED",), env_parse=_sdk_disabled),
    Key("SERVICE_NAME", "django", _text, "`service.name` of this process.", env=("OTEL_SERVICE_NAME",)),
    Key("SERVICE_VERSION", "", _optional_text, "`service.version` resource attribute."),
    Key("ENVIRONMENT", "", _optional_text, "`deployment.environment.name` resource attribute."),
    Key("RESOURCE_ATTRIBUTES", {}, _pairs, "Extra resource attributes, a dict of strings.",
        env=("OTEL_RESOURCE_ATTRIBUTES",)),
    Key("EXPORTER", "otlp", _choice(*EXPORTERS), "Where spans go: `otlp`, `console` or `none`.",
        env=("OTEL_TRACES_EXPORTER",)),
    Key("OTLP_ENDPOINT", "", _optional_text,
        "Collector base URL (`http://host:4318`; `/v1/traces` is added for HTTP). "
        "Empty: localhost on the protocol's standard port. OTLP ports are 4318 (HTTP) and "
        "4317 (gRPC); 14268 is Jaeger's legacy Thrift port and does not speak OTLP.",
        env=("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")),
    Key("OTLP_PROTOCOL", "http/protobuf", _choice(*PROTOCOLS), "`http/protobuf` or `grpc`.",
        env=("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")),
    Key("OTLP_HEADERS", {}, _pairs, "Headers sent with every export (auth tokens), a dict of strings.",
        env=("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")),
    Key("OTLP_TIMEOUT", 10.0, _positive(float),
        "Seconds one export request may take. (The OTEL_* variable is in milliseconds.)",
        env=("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"), env_parse=_millis_to_seconds),
    Key("SAMPLER", "parentbased_traceidratio", _choice(*SAMPLERS),
        "Head sampler, by its OTEL_TRACES_SAMPLER name.", env=("OTEL_TRACES_SAMPLER",)),
    Key("SAMPLE_RATIO", 1.0, _ratio, "Share of new traces kept by the ratio samplers, 0 to 1.",
        env=("OTEL_TRACES_SAMPLER_ARG",)),
    Key("PROPAGATORS", ("tracecontext", "baggage"), _names,
        "Context propagators by name, in order.", env=("OTEL_PROPAGATORS",)),
    Key("EXCLUDED_URLS", (), _patterns,
        "Regular expressions searched in the request path; a match is not traced.",
        env=("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")),
    Key("INTEGRATIONS", DEFAULT_INTEGRATIONS, _integrations,
        "Which integrations to install: a dict of name to bool, merged over the defaults."),
    Key("BATCH_SCHEDULE_DELAY", 5.0, _positive(float), "Seconds between batch exports.",
        env=("OTEL_BSP_SCHEDULE_DELAY",), env_parse=_millis_to_seconds),
    Key("BATCH_MAX_QUEUE_SIZE", 2048, _positive(int),
        "Spans held for export at most (the memory cap while the collector is slow or down); "
        "more are dropped and counted.",
        env=("OTEL_BSP_MAX_QUEUE_SIZE",)),
    Key("BATCH_MAX_EXPORT_SIZE", 512, _positive(int), "Spans sent in one export request at most.",
        env=("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",)),
    Key("BATCH_EXPORT_TIMEOUT", 30.0, _positive(float),
        "Seconds one batch may spend being exported, retries included; then it is dropped and counted.",
        env=("OTEL_BSP_EXPORT_TIMEOUT",), env_parse=_millis_to_seconds),
    # -- business context (baggage), trust boundary, propagation targets (issue 6) --
    Key("BAGGAGE_RESOLVER", "tracing_app.business.user_context", _optional_text,
        "Dotted path of `resolver(request) -> dict` giving the business context put into baggage "
        "when a request starts; empty: none."),
    Key("BAGGAGE_KEYS", ("enduser.id", "tenant.id"), _names,
        "Baggage keys the app sets itself from the resolver; other keys it returns are ignored, "
        "and under the `context` policy these keys are dropped from incoming requests."),
    Key("BAGGAGE_SPAN_ATTRIBUTES", ("enduser.id", "tenant.id"), _names,
        "Baggage keys copied onto every span as attributes (in every process)."),
    Key("BAGGAGE_HASHED", (), _names, "Of those, keys whose values are hashed (HMAC-SHA256, 16 hex) on spans."),
    Key("BAGGAGE_HASH_KEY", "", _optional_text, "Key of that HMAC (same in every service); empty: plain SHA-256."),
    Key("INCOMING_POLICY", "context", _choice(*INCOMING_POLICIES),
        "What to do with traceparent/baggage from public HTTP: `trust` both, `context` (keep the trace, "
        "drop BAGGAGE_KEYS), `link` (drop baggage, start a new trace linked to the remote one)."),
    Key("INCOMING_POLICY_ROUTES", (), _policy_routes,
        "Per path prefix policies, e.g. {'/internal/': 'trust'}; first match wins, else INCOMING_POLICY."),
    Key("PROPAGATE_TO", DEFAULT_PROPAGATE_TO, _host_patterns,
        "Hosts outgoing HTTP/gRPC calls may send trace context and baggage to: names, `*.suffix`, "
        "CIDR networks, `<single-label>`, `*`. Default: own services (see tracing_app.propagation)."),
    # -- sampling (issue 6) --
    Key("SAMPLING_RULES", (), _sampling_rules,
        "Head sampling rules for new traces, first match wins: dicts of path/route/route_name/method/"
        "task/queue and a ratio. No match: SAMPLE_RATIO. Children follow their parent."),
    Key("HEALTH_CHECK_URLS", (r"^/(healthz?|readyz|livez|ping)/?$",), _patterns,
        "Regular expressions of health-check paths: never traced or sampled (nor STATIC_URL/MEDIA_URL)."),
    # -- log correlation (issue 6) --
    Key("LOG_ERRORS_AS_EVENTS", False, _bool, "Add ERROR and CRITICAL log records to the current span as events."),
    # -- privacy (issue 6) --
    Key("RECORD_QUERY_PARAMS", (), _names, "Query string keys recorded in `url.query`; others never are."),
    Key("RECORD_REQUEST_HEADERS", (), _headers,
        "Request headers recorded as `http.request.header.*` (never Authorization, Cookie)."),
    Key("RECORD_RESPONSE_HEADERS", (), _headers,
        "Response headers recorded as `http.response.header.*` (never Set-Cookie)."),
    Key("RECORD_EXCEPTION_MESSAGES", False, _bool,
        "Record exception messages (they may quote user data: arguments, duplicate keys); "
        "off: type and stack frames only."),
    Key("RECORD_TASK_ARGS", (), _patterns,
        "Regexes of Celery task names whose args/kwargs are recorded (repr, 1000 characters at most)."),
    # -- messaging (issue 4): Celery trace shape, outbox relay ----------------------
    Key("CELERY_NEW_TRACE_TASKS", (), _names,
        "Task names (shell patterns allowed) whose runs start a new trace linked to the publisher "
        "instead of joining its trace: fan-out and long-running jobs. The publisher's sampling "
        "decision is kept."),
    Key("CELERY_NEW_TRACE_QUEUES", (), _names,
        "Like CELERY_NEW_TRACE_TASKS, by the queue (routing key) a task arrives on."),
    Key("OUTBOX_BROKER_URL", "", _optional_text,
        "AMQP URL `relay_outbox` publishes to. Empty: settings.CELERY_BROKER_URL."),
    # -- export pipeline and process lifecycle (issue 3) --
    Key("SHUTDOWN_TIMEOUT", 3.0, _positive(float),
        "Seconds a process may spend flushing spans when it exits (a Celery child, a gunicorn worker, "
        "a manage.py command) or in force_flush(); what is unsent by then is dropped and counted."),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}


@dataclasses.dataclass(frozen=True)
class Problem:
    """A setting that could not be used. ``check_id`` is the system check's id."""

    check_id: str
    key: str
    message: str
    hint: str


@dataclasses.dataclass(frozen=True)
class TracingConfig:
    values: Mapping[str, Any]
    sources: Mapping[str, str]
    problems: tuple[Problem, ...] = ()

    def __getattr__(self, name: str) -> Any:
        # Attribute access by lower-case key: ``config.service_name``. A typo raises.
        try:
            return self.values[name.upper()]
        except KeyError:
            raise AttributeError(f"TracingConfig has no setting {name!r}") from None

    @property
    def traces_endpoint(self) -> str:
        """The URL (HTTP) or address (gRPC) spans are sent to."""
        endpoint = self.values["OTLP_ENDPOINT"]
        protocol = self.values["OTLP_PROTOCOL"]
        if not endpoint:
            return f"http://localhost:{DEFAULT_PORTS[protocol]}" + ("/v1/traces" if protocol != "grpc" else "")
        if protocol == "grpc" or self.sources["OTLP_ENDPOINT"] == "env:OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":
            return endpoint
        if endpoint.rstrip("/").endswith("/v1/traces"):
            return endpoint
        return endpoint.rstrip("/") + "/v1/traces"

    def integration_enabled(self, name: str) -> bool:
        return bool(self.values["ENABLED"] and self.values["INTEGRATIONS"].get(name))


def resolve(user: Any, environ: Mapping[str, str]) -> TracingConfig:
    """Merge ``environ`` over ``user`` (the TRACING setting) over the defaults."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[Problem] = []
    if user is None:
        user = {}
    if not isinstance(user, Mapping):
        problems.append(Problem("tracing_app.E001", "TRACING", f"TRACING must be a dict, got {type(user).__name__}.",
                                "Write TRACING = {...} in settings.py, or remove it to use the defaults."))
        user = {}
    for name in sorted(set(user) - set(KEYS_BY_NAME)):
        problems.append(Problem("tracing_app.E002", str(name), f"TRACING has an unknown key {name!r}.",
                                f"Known keys: {', '.join(KEYS_BY_NAME)}."))
    for key in KEYS:
        values[key.name], sources[key.name] = key.default, SOURCE_DEFAULT
        if key.name in user:
            try:
                values[key.name], sources[key.name] = key.parse(user[key.name]), SOURCE_SETTINGS
            except InvalidValue as exc:
                problems.append(Problem("tracing_app.E003", key.name, f"TRACING[{key.name!r}] is invalid: {exc}.",
                                        f"{key.doc} Default: {key.default!r}."))
        for var in key.env:
            raw = environ.get(var)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[key.name], sources[key.name] = (key.env_parse or key.parse)(raw), f"env:{var}"
            except InvalidValue as exc:
                problems.append(Problem("tracing_app.E004", key.name, f"Environment variable {var} is invalid: {exc}.",
                                        f"Fix or unset {var}; it overrides TRACING[{key.name!r}]."))
            break
    return TracingConfig(values=values, sources=sources, problems=tuple(problems))


@functools.cache
def get_config() -> TracingConfig:
    return resolve(getattr(settings, "TRACING", None), os.environ)


@receiver(setting_changed)
def _clear_on_setting_changed(setting: str, **kwargs: Any) -> None:
    if setting == "TRACING":
        get_config.cache_clear()
