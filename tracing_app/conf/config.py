"""``TracingConfig``: the merged, typed configuration of this process, and where each
value came from.

Resolution order for each key, first hit wins:

1. the standard ``OTEL_*`` environment variable, when the key has one and it is set;
2. the project's ``settings.TRACING`` dict;
3. the default declared in ``keys.KEYS``.

``get_config()`` is cached and cleared when Django's ``setting_changed`` signal
reports a change to ``TRACING`` (tests use ``override_settings``). The user's dict
is read, never mutated. Bad values never raise here: they are collected in
``TracingConfig.problems`` and reported by the system checks in ``checks.py``,
while the value falls back to its default so the host app keeps running.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from tracing_app.conf.keys import DEFAULT_PORTS, KEYS, KEYS_BY_NAME, SOURCE_DEFAULT, SOURCE_SETTINGS
from tracing_app.conf.parsers import FalseWithWarning, InvalidValue, NoEffect

# An OTEL_* variable that is invalid: the specification asks for a warning and for the
# variable to be treated as unset, so it is a warning, not an error (manage.py still runs).
ENV_IGNORED = "tracing_app.W004"


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
    # Per integration name, where its on/off value came from: SOURCE_SETTINGS when the
    # user's TRACING["INTEGRATIONS"] names it, else SOURCE_DEFAULT. An optional
    # integration the user switched on must have its library; a default one need not.
    integration_sources: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Attribute access by lower-case key, ``config.service_name``: each value is also an
        # instance attribute, so the per-request reads are plain lookups, not __getattr__ calls.
        fields = {field.name for field in dataclasses.fields(self)}
        for key, value in self.values.items():
            name = key.lower()
            if name not in fields and not hasattr(type(self), name):
                object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only for a name that is not a setting (a typo), or a class without __post_init__ run.
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

    def integration_explicit(self, name: str) -> bool:
        """Whether the user's ``TRACING["INTEGRATIONS"]`` sets ``name`` (on or off)."""
        return self.integration_sources.get(name) == SOURCE_SETTINGS


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
    for name in sorted(set(user) - set(KEYS_BY_NAME), key=str):
        problems.append(Problem("tracing_app.E002", str(name), f"TRACING has an unknown key {name!r}.",
                                unknown_key_hint(name)))
    for key in KEYS:
        values[key.name], sources[key.name] = key.default, SOURCE_DEFAULT
        if key.name in user:
            try:
                values[key.name], sources[key.name] = key.parse(user[key.name]), SOURCE_SETTINGS
            except InvalidValue as exc:
                problems.append(Problem("tracing_app.E003", key.name, f"TRACING[{key.name!r}] is invalid: {exc}.",
                                        f"{key.doc} Default: {key.default!r}."))
        for var in key.env:  # the signal-specific variable first
            raw = environ.get(var)
            if raw is None or raw.strip() == "":
                continue  # empty is unset (the specification)
            try:
                value = (key.env_parse or key.parse)(raw)
            except FalseWithWarning as exc:
                problems.append(_ignored(var, key, str(exc)))
                value = exc.value
            except (InvalidValue, NoEffect) as exc:
                # Invalid: a warning, and the variable is treated as unset (the next one, then
                # TRACING, then the default apply). NoEffect: as unset, warning only if it says so.
                if not isinstance(exc, NoEffect) or exc.warning:
                    problems.append(_ignored(var, key, str(exc)))
                continue
            if key.merge_under_settings and sources[key.name] == SOURCE_SETTINGS:
                value = {**value, **values[key.name]}
            values[key.name], sources[key.name] = value, f"env:{var}"
            break
    problems.extend(_cross_checks(values, sources, environ))
    explicit = user["INTEGRATIONS"] if sources["INTEGRATIONS"] == SOURCE_SETTINGS else {}
    integration_sources = {name: SOURCE_SETTINGS if name in explicit else SOURCE_DEFAULT
                           for name in values["INTEGRATIONS"]}
    return TracingConfig(values=values, sources=sources, problems=tuple(problems),
                         integration_sources=integration_sources)


def _ignored(var: str, key: Any, why: str) -> Problem:
    return Problem(ENV_IGNORED, key.name, f"Environment variable {var} is ignored: {why}.",
                   f"Fix or unset {var}. Meanwhile TRACING[{key.name!r}] (or its default) applies.")


def _cross_checks(values: dict[str, Any], sources: dict[str, str], environ: Mapping[str, str]) -> list[Problem]:
    """Rules between variables: OTEL_BSP_MAX_EXPORT_BATCH_SIZE must not exceed
    OTEL_BSP_MAX_QUEUE_SIZE; OTEL_TRACES_SAMPLER_ARG is the argument of a ratio sampler only."""
    problems = []
    where = sources["BATCH_MAX_EXPORT_SIZE"]
    size = min(KEYS_BY_NAME["BATCH_MAX_EXPORT_SIZE"].default, values["BATCH_MAX_QUEUE_SIZE"])
    if values["BATCH_MAX_EXPORT_SIZE"] > values["BATCH_MAX_QUEUE_SIZE"] and where == SOURCE_DEFAULT:
        # Only the queue was made smaller than the default batch (512): a valid choice, not
        # a conflict, so the default batch follows the queue without a word.
        values["BATCH_MAX_EXPORT_SIZE"] = size
    elif values["BATCH_MAX_EXPORT_SIZE"] > values["BATCH_MAX_QUEUE_SIZE"]:
        # An error only when TRACING contradicts itself; with an OTEL_* variable on either
        # side, a warning (the environment must not stop manage.py).
        in_settings = where == SOURCE_SETTINGS and sources["BATCH_MAX_QUEUE_SIZE"] in (SOURCE_SETTINGS,
                                                                                       SOURCE_DEFAULT)
        problems.append(Problem(
            "tracing_app.E003" if in_settings else ENV_IGNORED, "BATCH_MAX_EXPORT_SIZE",
            f"BATCH_MAX_EXPORT_SIZE ({where}) is {values['BATCH_MAX_EXPORT_SIZE']}, more than BATCH_MAX_QUEUE_SIZE "
            f"({values['BATCH_MAX_QUEUE_SIZE']}); {size} is used.",
            "A batch is taken from the queue: make it at most the queue's size."))
        values["BATCH_MAX_EXPORT_SIZE"] = size
    if sources["SAMPLE_RATIO"] == "env:OTEL_TRACES_SAMPLER_ARG" and not values["SAMPLER"].endswith("traceidratio"):
        problems.append(Problem(
            ENV_IGNORED, "SAMPLE_RATIO",
            f"Environment variable OTEL_TRACES_SAMPLER_ARG is ignored: the sampler {values['SAMPLER']!r} "
            "takes no argument.", "Unset OTEL_TRACES_SAMPLER_ARG, or use a traceidratio sampler."))
    return problems


def unknown_key_hint(name: Any) -> str:
    """"Did you mean 'SERVICE_NAME'?" for the closest known key (difflib, case-insensitive),
    else where the keys are listed."""
    text = str(name).upper()
    nearest = difflib.get_close_matches(text, KEYS_BY_NAME, n=1, cutoff=0.6)
    if nearest:
        return f"Did you mean {nearest[0]!r}?"
    return "It is not a tracing_app setting; the keys are listed in the README's Settings table."


@functools.cache
def get_config() -> TracingConfig:
    return resolve(getattr(settings, "TRACING", None), os.environ)


@receiver(setting_changed)
def _clear_on_setting_changed(setting: str, **kwargs: Any) -> None:
    if setting == "TRACING":
        get_config.cache_clear()
