"""Which kind of process this is (its role) and the resource its spans carry.

One settings file serves every process of a project, so ``SERVICE_NAME`` alone
would give the web, the Celery worker, beat and ``manage.py`` commands the same
``service.name``. The role tells them apart, by this rule:

========== ================================= ======================================
role       which process                     ``service.name``
========== ================================= ======================================
``web``    gunicorn, uwsgi, ``runserver``,   ``SERVICE_NAME``
           anything not below
``worker`` ``celery worker``                 ``<SERVICE_NAME>-worker``
``beat``   ``celery beat``                   ``<SERVICE_NAME>-beat``
``command`` a ``manage.py`` command          ``<SERVICE_NAME>-command``
========== ================================= ======================================

``TRACING["SERVICE_NAMES"] = {"worker": ..., "beat": ..., "command": ...}`` names a
role outright. A name given to the process itself wins over both: the
``OTEL_SERVICE_NAME`` variable, or else ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``
(the OpenTelemetry SDK environment specification's order). Every span also carries
the role as the resource attribute ``tracing_app.process.role``.

The role is guessed from ``sys.argv`` when the provider is built (``django.setup()``
runs before Celery or Django says what the process is) and confirmed by the host
when it knows: Celery's ``worker_init``/``beat_init`` and the start of a management
command call ``set_process_role``, which updates the resource of a provider already
built. Tracers made before that keep the old resource only if they were made from
another provider.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence

from opentelemetry.sdk.resources import Resource

from tracing_app.conf import TracingConfig
from tracing_app.semconv import (
    DEPLOYMENT_ENVIRONMENT_NAME,
    SERVICE_NAME,
    SERVICE_VERSION,
    TRACING_APP_PROCESS_ROLE,
)

logger = logging.getLogger(__name__)

WEB, WORKER, BEAT, COMMAND = "web", "worker", "beat", "command"
ROLES = (WEB, WORKER, BEAT, COMMAND)
# manage.py commands that serve web requests: their process is the web.
WEB_COMMANDS = frozenset({"runserver", "testserver"})
# Celery's global options that take a value as the next argument (celery --help).
_CELERY_OPTIONS_WITH_VALUE = frozenset({"-A", "--app", "-b", "--broker", "--result-backend", "--loader",
                                        "--config", "--workdir"})

_role: str | None = None
_detected: str | None = None  # detect_role(sys.argv), once
# Called with the new role when it changes: provider.update_resource (which imports this module).
_role_listeners: list[Callable[[str], None]] = []


def role_of_command(command: str) -> str:
    """The role of a process running ``manage.py <command>``."""
    return WEB if command in WEB_COMMANDS else COMMAND


def detect_role(argv: Sequence[str]) -> str:
    """The role a command line says: ``celery ... worker`` is a worker, ``celery ... beat`` is
    beat, ``manage.py <command>`` (or ``django-admin``, ``python -m django``) a command
    (``runserver`` the web); anything else is the web."""
    if not argv:
        return WEB
    program = os.path.basename(argv[0])
    parent = os.path.basename(os.path.dirname(argv[0]))
    if program in ("celery", "celery.exe") or (program == "__main__.py" and parent == "celery"):
        skip_value = False
        for argument in argv[1:]:
            if skip_value:
                skip_value = False
            elif argument in _CELERY_OPTIONS_WITH_VALUE:
                skip_value = True
            elif not argument.startswith("-"):
                return {"worker": WORKER, "beat": BEAT}.get(argument, COMMAND)
        return COMMAND
    if program in ("manage.py", "django-admin", "django-admin.py") or (program == "__main__.py" and parent == "django"):
        return role_of_command(argv[1]) if len(argv) > 1 else COMMAND
    return WEB


def process_role() -> str:
    """This process's role: the one set by ``set_process_role``, else the one ``sys.argv`` says."""
    global _detected
    if _role is not None:
        return _role
    if _detected is None:
        _detected = detect_role(sys.argv)
    return _detected


def service_name(config: TracingConfig, role: str) -> str:
    """``service.name`` for a process of ``role`` (the rule in this module's docstring)."""
    if config.sources.get("SERVICE_NAME") == "env:OTEL_SERVICE_NAME":
        return config.service_name
    from_environment = config.sources.get("RESOURCE_ATTRIBUTES", "").startswith("env:")
    if from_environment and SERVICE_NAME in config.resource_attributes:
        return config.resource_attributes[SERVICE_NAME]
    if role in config.service_names:
        return config.service_names[role]
    return config.service_name if role == WEB else f"{config.service_name}-{role}"


def role_attributes(config: TracingConfig, role: str) -> dict[str, str]:
    return {SERVICE_NAME: service_name(config, role), TRACING_APP_PROCESS_ROLE: role}


def build_resource(config: TracingConfig, role: str | None = None) -> Resource:
    """The resource of this process (of ``role``, default ``process_role()``)."""
    attributes = dict(config.resource_attributes)
    if config.service_version:
        attributes[SERVICE_VERSION] = config.service_version
    if config.environment:
        attributes[DEPLOYMENT_ENVIRONMENT_NAME] = config.environment
    attributes.update(role_attributes(config, role or process_role()))
    # Resource.create adds the SDK's telemetry.sdk.* attributes and reads no env:
    # the OTEL_* variables were already merged by conf.resolve().
    return Resource.create(attributes)


def set_process_role(role: str) -> None:
    """Say what this process is (one of ``ROLES``): Celery's worker and beat signals and the
    management command hook call it. When the provider is already built with another
    role, its resource (``service.name``, ``tracing_app.process.role``) is updated.

    Raises ``ValueError`` for a role not in ``ROLES``.
    """
    global _role
    if role not in ROLES:
        raise ValueError(f"unknown process role {role!r}; expected one of {', '.join(ROLES)}")
    before, _role = process_role(), role
    if before != role:
        for listener in _role_listeners:
            listener(role)


def on_role_change(listener: Callable[[str], None]) -> None:
    """Call ``listener(role)`` whenever ``set_process_role`` changes the role."""
    if listener not in _role_listeners:
        _role_listeners.append(listener)


def reset_process_role() -> None:
    """Forget a role set by ``set_process_role`` (tests)."""
    global _role, _detected
    _role = _detected = None
