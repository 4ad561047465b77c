"""Head sampling by rules: which new traces are kept.

``RuleSampler`` decides for a root span only (``provider.build_sampler`` wraps it in
``ParentBased``, so every child in every process follows its parent's decision and a
trace is kept or dropped as a whole). Rules come from ``TRACING["SAMPLING_RULES"]``;
the first whose every field matches gives the ratio, else ``SAMPLE_RATIO``:

- ``path``: regex searched in ``url.path``;
- ``route``: regex searched in ``http.route`` (the Django route, e.g. ``api/orders/<int:pk>/``);
- ``route_name``: the URL pattern's name (``"order-detail"``, ``"shop:order-detail"``);
- ``method``: ``http.request.method``;
- ``task``: regex searched in ``celery.task.name``; ``queue``: in ``messaging.destination.name``.

Health checks (``HEALTH_CHECK_URLS``) and static/media files are never sampled.

At root-span creation the middleware only knows the path. Path and method rules
cost one regex each; when a rule needs ``route`` or ``route_name``, the middleware
resolves the URL before starting the span (``needs_route``), which Django repeats
for the view, so prefer ``path`` rules on hot endpoints.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import sampling
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from tracing_app.conf import TracingConfig
from tracing_app.semconv import CELERY_TASK_NAME, HTTP_REQUEST_METHOD, HTTP_ROUTE, MESSAGING_DESTINATION_NAME, URL_PATH

# The URL name the middleware resolved for the request being started (only when a
# rule asks for it): a name is not a span attribute, so it travels beside them.
current_route_name: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tracing_app_route_name", default=None
)
_DROP = sampling.SamplingResult(sampling.Decision.DROP)


class Rule:
    __slots__ = ("checks", "sampler", "text")

    def __init__(self, spec: Mapping[str, Any]) -> None:
        checks: list[tuple[str, Any]] = []
        for field, attribute in (("path", URL_PATH), ("route", HTTP_ROUTE), ("task", CELERY_TASK_NAME),
                                 ("queue", MESSAGING_DESTINATION_NAME)):
            if field in spec:
                checks.append((attribute, re.compile(spec[field]).search))
        if "method" in spec:
            checks.append((HTTP_REQUEST_METHOD, spec["method"].__eq__))
        if "route_name" in spec:
            checks.append(("", spec["route_name"].__eq__))
        self.checks = tuple(checks)
        self.sampler = sampling.TraceIdRatioBased(spec["ratio"])
        self.text = ",".join(f"{k}={v}" for k, v in spec.items())

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        for attribute, check in self.checks:
            value = attributes.get(attribute) if attribute else current_route_name.get()
            if not isinstance(value, str) or not check(value):
                return False
        return True


class RuleSampler(sampling.Sampler):
    def __init__(self, ratio: float, rules: Sequence[Mapping[str, Any]] = (),
                 never: re.Pattern[str] | None = None) -> None:
        self.default = sampling.TraceIdRatioBased(ratio)
        self.rules = tuple(Rule(spec) for spec in rules)
        self.never = never

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: SpanKind | None = None,
                      attributes: Attributes = None, links: Sequence[Link] | None = None,
                      trace_state: Any = None) -> sampling.SamplingResult:
        attributes = attributes or {}
        if self.never is not None:
            path = attributes.get(URL_PATH)
            if isinstance(path, str) and self.never.search(path):
                return _DROP
        for rule in self.rules:
            if rule.matches(attributes):
                return rule.sampler.should_sample(parent_context, trace_id, name, kind, attributes, links,
                                                  trace_state)
        return self.default.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        rules = ";".join(rule.text for rule in self.rules)
        return f"RuleSampler{{default={self.default.rate},rules=[{rules}]}}"


def ratio_of_roots(sampler: sampling.Sampler) -> tuple[int, re.Pattern[str] | None] | None:
    """``(bound, never)`` when ``sampler`` decides a root span by its trace id alone: sampled
    when the id's low 64 bits are below ``bound`` (the SDK's ``TraceIdRatioBased``) and its
    ``url.path``, if any, does not match ``never``. That is a ``RuleSampler`` without rules,
    or a bare ``TraceIdRatioBased``; None for any other sampler (it must be asked)."""
    if type(sampler) is RuleSampler and not sampler.rules and type(sampler.default) is sampling.TraceIdRatioBased:
        return sampler.default.bound, sampler.never
    if type(sampler) is sampling.TraceIdRatioBased:
        return sampler.bound, None
    return None


def needs_route(config: TracingConfig) -> tuple[bool, bool]:
    """(any rule matches ``route``, any rule matches ``route_name``)."""
    rules = config.sampling_rules
    return any("route" in rule for rule in rules), any("route_name" in rule for rule in rules)


def never_sampled(config: TracingConfig) -> re.Pattern[str] | None:
    """One regex for health checks and STATIC_URL/MEDIA_URL paths."""
    from django.conf import settings

    patterns = [f"(?:{p})" for p in config.health_check_urls]
    for name in ("STATIC_URL", "MEDIA_URL"):
        url = getattr(settings, name, None)
        if isinstance(url, str) and url and "://" not in url and url.strip("/"):
            patterns.append("^" + re.escape("/" + url.lstrip("/")))
    return re.compile("|".join(patterns)) if patterns else None
