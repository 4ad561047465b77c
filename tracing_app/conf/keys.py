"""The schema: every ``TRACING`` key, its default, its parser, its meaning and its
``OTEL_*`` variables. ``KEYS`` is the one list; the README's settings table and the
system checks read it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from tracing_app.conf.parsers import (
    InvalidValue,
    as_bool,
    as_limit,
    as_lower_names,
    as_names,
    as_optional_limit,
    as_optional_text,
    as_pairs,
    as_patterns,
    as_propagator_names,
    as_ratio,
    as_text,
    choice,
    env_bool,
    env_choice,
    env_count,
    env_disables,
    env_duration,
    env_integer,
    env_pairs,
    env_propagator_names,
    env_timeout,
    positive,
)

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
MIB = 1024 * 1024
COMPRESSIONS = ("none", "gzip")
# Values the OpenTelemetry environment specification knows and tracing_app does not do.
UNSUPPORTED_EXPORTERS = {"zipkin": "Zipkin is deprecated; use otlp", "logging": "deprecated; use console",
                         "otlp/stdout": "in development in the specification; use console"}
UNSUPPORTED_PROTOCOLS = {"http/json": "use http/protobuf or grpc"}
UNSUPPORTED_SAMPLERS = {name: "no remote sampler is built in; use SAMPLING_RULES"
                        for name in ("jaeger_remote", "parentbased_jaeger_remote", "xray")}


# -- business context, sampling and privacy ---------------------------------------

INCOMING_POLICIES = ("trust", "context", "link")
SAMPLING_RULE_FIELDS = ("path", "route", "route_name", "method", "task", "queue")
NEVER_ALLOWED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


# Our own services: compose/Kubernetes short names, localhost, internal domains, private networks.
DEFAULT_PROPAGATE_TO = (
    "<single-label>", "localhost", "*.local", "*.internal", "*.svc", "*.svc.cluster.local",
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
)


def _headers(value: Any) -> tuple[str, ...]:
    names = as_lower_names(value)
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
    names = as_lower_names(value)
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
        parsed = {"ratio": as_ratio(rule["ratio"])}
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


SERVICE_NAME_ROLES = ("worker", "beat", "command")


def _service_names(value: Any) -> dict[str, str]:
    """``{"worker": "shop-worker", ...}``: service.name per process role (pipeline/resource.py)."""
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a dict of process role to service name, got {value!r}")
    names = {}
    for role, name in value.items():
        if role not in SERVICE_NAME_ROLES:
            raise InvalidValue(f"unknown process role {role!r}; roles: {', '.join(SERVICE_NAME_ROLES)} "
                               "(the web is SERVICE_NAME)")
        names[role] = as_text(name)
    return names


SQL_COMMENTER_FIELDS = ("traceparent", "tracestate", "db_driver", "framework", "route", "controller")


def _sqlcommenter_fields(value: Any) -> tuple[str, ...]:
    names = as_names(value)
    unknown = sorted(set(names) - set(SQL_COMMENTER_FIELDS))
    if unknown:
        raise InvalidValue(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(SQL_COMMENTER_FIELDS)}")
    return names


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise InvalidValue(f"expected a whole number, 0 or more, got {value!r}")
    return int(value)


def _integrations(value: Any) -> dict[str, bool]:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a dict of integration name to bool, got {value!r}")
    merged = dict(DEFAULT_INTEGRATIONS)
    for name, enabled in value.items():
        if name not in DEFAULT_INTEGRATIONS:
            raise InvalidValue(f"unknown integration {name!r}; known: {', '.join(DEFAULT_INTEGRATIONS)}")
        merged[name] = as_bool(enabled)
    return merged


# Development housekeeping: they read code, migration files or settings, or open a shell;
# the few queries they make (the migration table, content types) are not work anyone
# looks for in a trace, and they run many times a day on developers' machines.
# migrate is not here: it runs in deployments, where a slow migration is worth a trace.
UNTRACED_COMMANDS = (
    "check", "makemigrations", "showmigrations", "sqlmigrate", "squashmigrations", "optimizemigration",
    "shell", "dbshell", "diffsettings", "inspectdb", "sqlflush", "sqlsequencereset",
    "collectstatic", "findstatic", "makemessages", "compilemessages", "startapp", "startproject",
    "tracing_tail",
)
# Long-running servers and consumers (each request or message is a trace of its own: a
# span around the whole run would never end) and the test runner (tests assert their own
# traces, which must stay roots).
COMMANDS_WITHOUT_SPAN = ("runserver", "testserver", "relay_outbox", "test")

DEFAULT_INTEGRATIONS = {
    "django": True,
    "celery": True,
    "database": True,
    # One trace per manage.py command (integrations/django/commands.py).
    "management": True,
    "logging": True,
    # Service hops: gRPC interceptors and outgoing HTTP, one switch per client library
    # ("http_client" is requests).
    "grpc": True,
    "http_client": True,
    "httpx": True,
    "urllib3": True,
    "urllib": True,
    "aiohttp": True,
    # Django's cache framework (get, set, ... and their async forms).
    "cache": True,
}


@dataclasses.dataclass(frozen=True)
class Key:
    name: str
    default: Any
    parse: Callable[[Any], Any]
    doc: str
    env: tuple[str, ...] = ()
    env_parse: Callable[[Any], Any] | None = None
    # True: the variable's dict is merged under TRACING's instead of replacing it.
    merge_under_settings: bool = False


KEYS: tuple[Key, ...] = (
    Key("ENABLED", True, as_bool, "Master switch. False: nothing is instrumented or exported.",
        env=("OTEL_SDK_DISABLED",), env_parse=env_disables),
    Key("SERVICE_NAME", "django", as_text,
        "`service.name` of the web processes; the others add their role (SERVICE_NAMES).",
        env=("OTEL_SERVICE_NAME",)),
    Key("SERVICE_NAMES", {}, _service_names,
        "`service.name` per process role, e.g. {'worker': 'shop-worker'}; roles: worker (celery worker), "
        "beat (celery beat), command (manage.py commands but runserver). A role not given is named "
        "`<SERVICE_NAME>-<role>`; the web is SERVICE_NAME. OTEL_SERVICE_NAME still names a process outright."),
    Key("SERVICE_VERSION", "", as_optional_text, "`service.version` resource attribute."),
    Key("ENVIRONMENT", "", as_optional_text, "`deployment.environment.name` resource attribute."),
    Key("RESOURCE_ATTRIBUTES", {}, as_pairs,
        "Extra resource attributes, a dict of strings. OTEL_RESOURCE_ATTRIBUTES (percent-decoded) is merged "
        "under it: on the same key TRACING wins, as the resource specification says.",
        env=("OTEL_RESOURCE_ATTRIBUTES",), env_parse=env_pairs, merge_under_settings=True),
    Key("EXPORTER", "otlp", choice(*EXPORTERS), "Where spans go: `otlp`, `console` or `none`.",
        env=("OTEL_TRACES_EXPORTER",), env_parse=env_choice(*EXPORTERS, unsupported=UNSUPPORTED_EXPORTERS)),
    Key("OTLP_ENDPOINT", "", as_optional_text,
        "Collector base URL (`http://host:4318`; `/v1/traces` is added for HTTP). "
        "Empty: localhost on the protocol's standard port. OTLP ports are 4318 (HTTP) and "
        "4317 (gRPC); 14268 is Jaeger's legacy Thrift port and does not speak OTLP.",
        env=("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")),
    Key("OTLP_PROTOCOL", "http/protobuf", choice(*PROTOCOLS), "`http/protobuf` or `grpc`.",
        env=("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
        env_parse=env_choice(*PROTOCOLS, unsupported=UNSUPPORTED_PROTOCOLS)),
    Key("OTLP_HEADERS", {}, as_pairs,
        "Headers sent with every export (auth tokens), a dict of strings. The OTEL_* variables are "
        "percent-decoded (`Authorization=Basic%20QUJD` sends `Basic QUJD`).",
        env=("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"), env_parse=env_pairs),
    Key("OTLP_TIMEOUT", 10.0, positive(float),
        "Seconds one export request may take. (The OTEL_* variable is in whole milliseconds; 0: no limit.)",
        env=("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"), env_parse=env_timeout),
    Key("OTLP_COMPRESSION", "none", choice(*COMPRESSIONS), "Export request compression: `none` or `gzip`.",
        env=("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"),
        env_parse=env_choice(*COMPRESSIONS)),
    Key("OTLP_CERTIFICATE", "", as_optional_text,
        "PEM file of the certificates trusted to verify the collector's TLS certificate; empty: the system's.",
        env=("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")),
    Key("OTLP_CLIENT_KEY", "", as_optional_text, "PEM file of the client's private key, for mTLS.",
        env=("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY")),
    Key("OTLP_CLIENT_CERTIFICATE", "", as_optional_text, "PEM file of the client's certificate (chain), for mTLS.",
        env=("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")),
    Key("OTLP_INSECURE", False, as_bool,
        "gRPC only, for an endpoint written without http:// or https://: True sends without TLS.",
        env=("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE"), env_parse=env_bool),
    Key("SAMPLER", "parentbased_traceidratio", choice(*SAMPLERS),
        "Head sampler, by its OTEL_TRACES_SAMPLER name.", env=("OTEL_TRACES_SAMPLER",),
        env_parse=env_choice(*SAMPLERS, unsupported=UNSUPPORTED_SAMPLERS)),
    Key("SAMPLE_RATIO", 1.0, as_ratio, "Share of new traces kept by the ratio samplers, 0 to 1.",
        env=("OTEL_TRACES_SAMPLER_ARG",)),
    Key("PROPAGATORS", ("tracecontext", "baggage"), as_propagator_names,
        "Context propagators by name, in order; `none`: none (nothing injected or extracted).",
        env=("OTEL_PROPAGATORS",), env_parse=env_propagator_names),
    Key("EXCLUDED_URLS", (), as_patterns,
        "Regular expressions searched in the request path; a match is not traced.",
        env=("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")),
    Key("INTEGRATIONS", DEFAULT_INTEGRATIONS, _integrations,
        "Which integrations to install: a dict of name to bool, merged over the defaults."),
    Key("BATCH_SCHEDULE_DELAY", 5.0, positive(float), "Seconds between batch exports.",
        env=("OTEL_BSP_SCHEDULE_DELAY",), env_parse=env_duration),
    Key("BATCH_MAX_QUEUE_SIZE", 2048, positive(int),
        "Spans held for export at most (the memory cap while the collector is slow or down, with "
        "BATCH_MAX_QUEUE_BYTES); more are dropped and counted.",
        env=("OTEL_BSP_MAX_QUEUE_SIZE",), env_parse=env_integer),
    Key("BATCH_MAX_QUEUE_BYTES", 8 * MIB, positive(int),
        "Bytes held for export at most (spans' estimated encoded size; Python's own memory per span "
        "comes on top): the cap for long statements; more are dropped and counted."),
    Key("BATCH_MAX_EXPORT_SIZE", 512, positive(int),
        "Spans sent in one export request at most; not more than BATCH_MAX_QUEUE_SIZE.",
        env=("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",), env_parse=env_integer),
    Key("BATCH_MAX_EXPORT_BYTES", 3 * MIB, positive(int),
        "Bytes of one export request at most (encoded OTLP); bigger batches are split. Default 3 MiB: "
        "under the 4 MiB a stock Collector or Jaeger takes per gRPC message (its HTTP limit is 20 MiB); "
        "lower it behind a proxy with a smaller body limit (nginx: 1 MiB)."),
    # -- span limits (the SDK's SpanLimits, given explicitly: it raises at an empty or invalid variable) --
    Key("SPAN_ATTRIBUTE_COUNT_LIMIT", 128, as_limit, "Attributes one span keeps at most; more are dropped.",
        env=("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"), env_parse=env_count),
    Key("SPAN_EVENT_COUNT_LIMIT", 128, as_limit, "Events one span keeps at most.",
        env=("OTEL_SPAN_EVENT_COUNT_LIMIT",), env_parse=env_count),
    Key("SPAN_LINK_COUNT_LIMIT", 128, as_limit, "Links one span keeps at most.",
        env=("OTEL_SPAN_LINK_COUNT_LIMIT",), env_parse=env_count),
    Key("EVENT_ATTRIBUTE_COUNT_LIMIT", 128, as_limit, "Attributes one span event keeps at most.",
        env=("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"), env_parse=env_count),
    Key("LINK_ATTRIBUTE_COUNT_LIMIT", 128, as_limit, "Attributes one span link keeps at most.",
        env=("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"), env_parse=env_count),
    Key("ATTRIBUTE_VALUE_LENGTH_LIMIT", None, as_optional_limit,
        "Characters an attribute value of an event or link keeps at most; None: no limit.",
        env=("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",), env_parse=env_count),
    Key("SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", None, as_optional_limit,
        "Characters a span attribute value keeps at most; None: no limit.",
        env=("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"), env_parse=env_count),
    Key("BATCH_EXPORT_TIMEOUT", 30.0, positive(float),
        "Seconds one batch may spend being exported, retries included; then it is dropped and counted. "
        "(The OTEL_* variable is in whole milliseconds; 0: no limit.)",
        env=("OTEL_BSP_EXPORT_TIMEOUT",), env_parse=env_timeout),
    # -- business context (baggage), trust boundary, propagation targets --
    Key("BAGGAGE_RESOLVER", "tracing_app.user_context", as_optional_text,
        "Dotted path of `resolver(request) -> dict` giving the business context put into baggage "
        "when a request starts; empty: none."),
    Key("BAGGAGE_KEYS", ("enduser.id", "tenant.id"), as_names,
        "Baggage keys the app sets itself from the resolver; other keys it returns are ignored, "
        "and under the `context` policy these keys are dropped from incoming requests."),
    Key("BAGGAGE_SPAN_ATTRIBUTES", ("enduser.id", "tenant.id"), as_names,
        "Baggage keys copied onto every span as attributes (in every process)."),
    Key("BAGGAGE_HASHED", (), as_names, "Of those, keys whose values are hashed (HMAC-SHA256, 16 hex) on spans."),
    Key("BAGGAGE_HASH_KEY", "", as_optional_text, "Key of that HMAC (same in every service); empty: plain SHA-256."),
    Key("INCOMING_POLICY", "context", choice(*INCOMING_POLICIES),
        "What to do with traceparent/baggage from public HTTP: `trust` both, `context` (keep the trace, "
        "drop BAGGAGE_KEYS), `link` (drop baggage, start a new trace linked to the remote one)."),
    Key("INCOMING_POLICY_ROUTES", (), _policy_routes,
        "Per path prefix policies, e.g. {'/internal/': 'trust'}; first match wins, else INCOMING_POLICY."),
    Key("PROPAGATE_TO", DEFAULT_PROPAGATE_TO, _host_patterns,
        "Hosts outgoing HTTP/gRPC calls may send trace context and baggage to: names, `*.suffix`, "
        "CIDR networks, `<single-label>`, `*`. Default: own services (see tracing_app.context.egress)."),
    # -- sampling --
    Key("SAMPLING_RULES", (), _sampling_rules,
        "Head sampling rules for new traces, first match wins: dicts of path/route/route_name/method/"
        "task/queue and a ratio. No match: SAMPLE_RATIO. Children follow their parent."),
    Key("HEALTH_CHECK_URLS", (r"^/(healthz?|readyz|livez|ping)/?$",), as_patterns,
        "Regular expressions of health-check paths: never traced or sampled (nor STATIC_URL/MEDIA_URL)."),
    # -- log correlation --
    Key("LOG_ERRORS_AS_EVENTS", False, as_bool, "Add ERROR and CRITICAL log records to the current span as events."),
    # -- privacy --
    Key("RECORD_QUERY_PARAMS", (), as_names,
        "Query string keys whose values are recorded in `url.query`; other values are `REDACTED`."),
    Key("RECORD_REQUEST_HEADERS", (), _headers,
        "Request headers recorded as `http.request.header.*` (never Authorization, Cookie)."),
    Key("RECORD_RESPONSE_HEADERS", (), _headers,
        "Response headers recorded as `http.response.header.*` (never Set-Cookie)."),
    Key("RECORD_EXCEPTION_MESSAGES", False, as_bool,
        "Record exception messages (they may quote user data: arguments, duplicate keys); "
        "off: type and stack frames only."),
    Key("RECORD_CACHE_KEYS", (), as_names,
        "Cache keys (shell patterns, e.g. `product-price:*`) recorded in `tracing_app.cache.key` on "
        "single-key cache operations; others never are."),
    Key("RECORD_TASK_ARGS", (), as_patterns,
        "Regexes of Celery task names whose args/kwargs are recorded (repr, 1000 characters at most)."),
    # -- database --
    Key("REPEATED_QUERY_THRESHOLD", 10, _count,
        "A request or task that runs one statement shape more than this many times gets "
        "`tracing_app.db.repeated_query.count`, an event per such shape and one WARNING log line (N+1 "
        "queries). 0: off."),
    Key("SQL_COMMENTER", False, as_bool,
        "Append the trace context to each SQL statement as a sqlcommenter comment (`/*traceparent='...'*/`), "
        "so PostgreSQL's pg_stat_activity and logs name the trace. Costs: see README."),
    Key("SQL_COMMENTER_FIELDS", ("traceparent",), _sqlcommenter_fields,
        "What the comment holds: any of " + ", ".join(SQL_COMMENTER_FIELDS) + "."),
    Key("QUERY_TEXT_MAX_LENGTH", 2048, positive(int),
        "Characters of `db.query.text` kept, after values became `?` and repeated lists were written once. "
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT / OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, when lower, cut every "
        "attribute of every span further."),
    # -- messaging: Celery trace shape, outbox relay ----------------------
    Key("CELERY_NEW_TRACE_TASKS", (), as_names,
        "Task names (shell patterns allowed) whose runs start a new trace linked to the publisher "
        "instead of joining its trace: fan-out and long-running jobs. The publisher's sampling "
        "decision is kept."),
    Key("CELERY_NEW_TRACE_QUEUES", (), as_names,
        "Like CELERY_NEW_TRACE_TASKS, by the queue (routing key) a task arrives on."),
    Key("OUTBOX_BROKER_URL", "", as_optional_text,
        "AMQP URL `relay_outbox` publishes to. Empty: settings.CELERY_BROKER_URL."),
    # -- export pipeline and process lifecycle --
    # -- management commands --
    Key("UNTRACED_COMMANDS", UNTRACED_COMMANDS, as_names,
        "manage.py commands (shell patterns allowed) run with tracing suppressed: no command span, no spans "
        "from tracing_app's integrations (queries, cache, publishes, gRPC calls) nor OpenTelemetry's "
        "instrumentations. Default: development housekeeping that reads code "
        "or settings and whose queries say nothing (checks, migration files, shells, static files, translations)."),
    Key("COMMANDS_WITHOUT_SPAN", COMMANDS_WITHOUT_SPAN, as_names,
        "manage.py commands traced without a command span: servers and consumers, whose requests or "
        "messages are traces of their own, and `test`. Other commands are one trace each."),
    Key("SHUTDOWN_TIMEOUT", 3.0, positive(float),
        "Seconds a process may spend flushing spans when it exits (a Celery child, a gunicorn worker, "
        "a manage.py command) or in force_flush(); what is unsent by then is dropped and counted."),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}

