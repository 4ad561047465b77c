"""One trace per ``manage.py`` command: the command run is one root span, and the
queries, publishes and calls it makes are its children (instead of one lone trace
per query: a no-op ``migrate`` made 30).

The span follows OpenTelemetry's CLI conventions (semconv ``cli``, "execution
(callee) spans", INTERNAL kind) with the low-cardinality name they allow for
instrumentations that know the command: ``"<program> <command>"`` as the user
typed it, e.g. ``manage.py migrate``, ``django-admin check`` or ``python -m django
shell``. Attributes: ``django.command.name``; ``django.command.options``, the names
(the ``dest`` that ``handle(**options)`` receives) of the arguments and options
given on the command line, never their values; ``process.executable.name``,
``process.pid``, ``process.exit.code``, and ``error.type`` (the exception's class, or
the exit code) when the command failed.

A run that only prints its help or version (``--help``, ``-h``, ``--version``) makes no span.
``TRACING["UNTRACED_COMMANDS"]`` run with instrumentation suppressed (OpenTelemetry's
suppression key: no database spans, nor spans from OpenTelemetry's own
instrumentations): development housekeeping whose queries say nothing.
``TRACING["COMMANDS_WITHOUT_SPAN"]`` are traced as usual but get no command span:
servers and consumers (``runserver``, ``relay_outbox``), each of whose requests or
messages is its own trace, and ``test``, whose tests assert their own traces. Their
start-up checks (``check``, ``check_migrations``) run untraced. ``runserver``'s
autoreloader parent (which only restarts the child that serves) runs untraced.

Django sends no signal around a command, so this patches
``BaseCommand.run_from_argv``, the entry point ``manage.py`` calls and
``call_command`` does not (a command calling another stays one span); the original
is kept and restored by ``uninstall()``.
"""

from __future__ import annotations

import argparse
import contextvars
import fnmatch
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracing_app.conf import TracingConfig
from tracing_app.context.suppression import untraced
from tracing_app.integrations.base import Integration
from tracing_app.pipeline.provider import get_tracer
from tracing_app.pipeline.resource import role_of_command, set_process_role
from tracing_app.safety import guarded
from tracing_app.semconv import (
    DJANGO_COMMAND_NAME,
    DJANGO_COMMAND_OPTIONS,
    ERROR_TYPE,
    PROCESS_EXECUTABLE_NAME,
    PROCESS_EXIT_CODE,
    PROCESS_PID,
)

RELOADING_COMMANDS = frozenset({"runserver"})
# argparse prints and exits on these before the command runs: nothing to trace (and, with
# no collector, nothing to warn about).
INFORMATION_OPTIONS = frozenset({"-h", "--help", "--version"})
_running: contextvars.ContextVar[bool] = contextvars.ContextVar("tracing_app_command_running", default=False)


class _GivenOnly(argparse.Namespace):
    """A namespace argparse fills with the options given and nothing else: every option
    name "exists" (``hasattr`` is true), so argparse writes no default into it. (argparse's
    own bookkeeping names start with ``_`` and must not exist.)"""

    def __getattr__(self, name: str) -> None:
        if name.startswith("_"):
            raise AttributeError(name)
        return None


def given_options(command: BaseCommand, argv: list[str]) -> list[str] | None:
    """The names (``dest``) of the arguments and options ``argv`` gives ``command``,
    sorted; None when they cannot be parsed (the command reports that itself)."""
    try:
        parser = command.create_parser(argv[0], argv[1])
        namespace = _GivenOnly()
        parser.parse_known_args(argv[2:], namespace)
    except (Exception, SystemExit):
        return None
    # Optional positionals (nargs "?" or "*") are set to None or [] when absent.
    return sorted(name for name, value in vars(namespace).items() if value is not None and value != [])


def program_name(argv0: str) -> str:
    """What the user typed to run Django's command line (Django's own rule)."""
    name = os.path.basename(argv0)
    return "python -m django" if name == "__main__.py" else name


def exit_code(code: Any) -> int:
    """The process exit status ``sys.exit(code)`` gives."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _untraced_method(method: Callable[..., Any]) -> Callable[..., Any]:
    def run_untraced(*args: Any, **kwargs: Any) -> Any:
        with untraced():
            return method(*args, **kwargs)

    return run_untraced


class ManagementIntegration(Integration):
    name = "management"

    def __init__(self) -> None:
        super().__init__()
        self.original_run_from_argv: Callable[[BaseCommand, list[str]], None] | None = None
        self.untraced_commands: tuple[str, ...] = ()
        self.commands_without_span: tuple[str, ...] = ()

    def _install(self, config: TracingConfig) -> None:
        self.untraced_commands = config.untraced_commands
        self.commands_without_span = config.commands_without_span
        original = BaseCommand.run_from_argv
        integration = self

        def run_from_argv(command: BaseCommand, argv: list[str]) -> None:
            if not integration.installed or _running.get() or len(argv) < 2:
                return original(command, argv)
            token = _running.set(True)
            try:
                with integration.traced_run(command, argv):
                    return original(command, argv)
            finally:
                _running.reset(token)

        run_from_argv.__wrapped__ = original  # type: ignore[attr-defined]
        self.original_run_from_argv = original
        BaseCommand.run_from_argv = run_from_argv  # type: ignore[method-assign]

    def _uninstall(self) -> None:
        if self.original_run_from_argv is not None:
            if getattr(BaseCommand.run_from_argv, "__wrapped__", None) is self.original_run_from_argv:
                BaseCommand.run_from_argv = self.original_run_from_argv  # type: ignore[method-assign]
            self.original_run_from_argv = None

    @contextmanager
    def traced_run(self, command: BaseCommand, argv: list[str]) -> Iterator[None]:
        """Around one command run from the command line: its span, or no spans at all."""
        name = argv[1]
        with guarded("naming the process of a management command"):
            set_process_role(role_of_command(name))
        if _matches(name, self.untraced_commands) or INFORMATION_OPTIONS.intersection(argv[2:]) or (
                name in RELOADING_COMMANDS and os.environ.get(DJANGO_AUTORELOAD_ENV) != "true"
                and "--noreload" not in argv):
            # The autoreloader's parent only restarts the child that serves: nothing to trace.
            with untraced():
                yield
            return
        if _matches(name, self.commands_without_span):
            # Start-up checks of a server are housekeeping; per instance, nothing global is patched.
            command.check = _untraced_method(command.check)  # type: ignore[method-assign]
            command.check_migrations = _untraced_method(command.check_migrations)  # type: ignore[method-assign]
            yield
            return
        span = None
        with guarded("starting a management command's span"):
            span = self.start_span(command, argv)
        if span is None:
            yield
            return
        code = 0
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                yield
        except SystemExit as exc:
            code = exit_code(exc.code)
            raise
        except BaseException as exc:
            code = 130 if isinstance(exc, KeyboardInterrupt) else 1
            with guarded("recording a management command's exception"):
                span.record_exception(exc)
                span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
            raise
        finally:
            with guarded("ending a management command's span"):
                span.set_attribute(PROCESS_EXIT_CODE, code)
                if code:
                    if ERROR_TYPE not in span.attributes:
                        span.set_attribute(ERROR_TYPE, str(code))
                    span.set_status(Status(StatusCode.ERROR, f"exit code {code}"))
                span.end()

    def start_span(self, command: BaseCommand, argv: list[str]) -> trace.Span:
        attributes: dict[str, Any] = {
            DJANGO_COMMAND_NAME: argv[1],
            PROCESS_EXECUTABLE_NAME: os.path.basename(os.path.realpath(sys.executable)),
            PROCESS_PID: os.getpid(),
        }
        options = given_options(command, argv)
        if options is not None:
            attributes[DJANGO_COMMAND_OPTIONS] = options
        # A root: a command run is a trace of its own whatever context the process holds.
        return get_tracer().start_span(f"{program_name(argv[0])} {argv[1]}", context=trace.set_span_in_context(
            trace.INVALID_SPAN), kind=SpanKind.INTERNAL, attributes=attributes)


integration = ManagementIntegration()
