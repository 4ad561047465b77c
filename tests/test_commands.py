"""The management integration in-process: one span per command run from the command line,
its failures, nesting, and uninstall restoring Django's method (the real processes are
in tests/e2e/test_command_traces.py)."""

import pytest
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from tracing_app.conf import get_config
from tracing_app.integrations import get_integration
from tracing_app.integrations.django import commands
from tracing_app.pipeline import resource
from tracing_app.testing import capture_spans


@pytest.fixture(autouse=True)
def _forget_role():
    yield
    resource.reset_process_role()


class Outer(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("label")
        parser.add_argument("--limit", type=int, default=3)
        parser.add_argument("--raise", dest="raise_", default="")

    def handle(self, *args, **options):
        if options["raise_"] == "interrupt":
            raise KeyboardInterrupt
        if options["raise_"] == "bug":
            raise LookupError("a bug")
        if options["raise_"] == "command":
            raise CommandError("bad input", returncode=3)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        Inner().run_from_argv(["manage.py", "inner"])  # nested: stays inside this trace
        call_command(Inner())


class Inner(BaseCommand):
    def handle(self, *args, **options):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 2")


def run(argv):
    try:
        Outer().run_from_argv(argv)
    except SystemExit as exc:
        return exc.code
    return 0


@pytest.mark.django_db(transaction=True)
def test_a_command_and_what_it_runs_are_one_trace():
    with capture_spans() as spans:
        assert run(["/srv/manage.py", "outer", "secret-label", "--limit", "7"]) == 0
    records = spans.records()
    [root] = [r for r in records if not r.parent_id]
    assert root.name == "manage.py outer" and root.kind == "INTERNAL"
    assert list(root.attributes["django.command.options"]) == ["label", "limit"]
    assert "secret-label" not in str(root.attributes) and "7" not in str(root.attributes["django.command.options"])
    assert sorted(r.name for r in records if r.parent_id) == ["SELECT", "SELECT", "SELECT"]
    assert {r.trace_id for r in records} == {root.trace_id}
    assert resource.process_role() == "command"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("how", "code", "error_type"), [
    ("interrupt", 130, "KeyboardInterrupt"), ("bug", 1, "LookupError"), ("command", 3, "3")])
def test_a_failed_command_records_its_exit_code_and_error(how, code, error_type):
    with capture_spans() as spans:
        with pytest.raises((KeyboardInterrupt, LookupError)) if how != "command" else _nothing():
            assert run(["manage.py", "outer", "x", "--raise", how]) == code
    [root] = spans.records()
    assert root.error and root.attributes["process.exit.code"] == code
    assert root.attributes["error.type"] == error_type


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.django_db(transaction=True)
def test_untraced_and_spanless_commands(settings):
    settings.TRACING = {**settings.TRACING, "UNTRACED_COMMANDS": ["out*"], "COMMANDS_WITHOUT_SPAN": []}
    integration = get_integration("management")
    integration.uninstall()
    integration.install(get_config())
    try:
        with capture_spans() as spans:
            assert run(["manage.py", "outer", "x"]) == 0
        assert spans.records() == []
        settings.TRACING = {**settings.TRACING, "UNTRACED_COMMANDS": [], "COMMANDS_WITHOUT_SPAN": ["outer"]}
        integration.uninstall()
        integration.install(get_config())
        with capture_spans() as spans:
            assert run(["manage.py", "outer", "x"]) == 0
        records = spans.records()
        assert [r.name for r in records] == ["SELECT", "SELECT", "SELECT"]
        assert len({r.trace_id for r in records}) == 3  # lone queries: no command span
    finally:
        integration.uninstall()
        settings.TRACING = {k: v for k, v in settings.TRACING.items()
                            if k not in ("UNTRACED_COMMANDS", "COMMANDS_WITHOUT_SPAN")}
        integration.install(get_config())


def test_uninstall_puts_back_djangos_method():
    integration = get_integration("management")
    patched = BaseCommand.run_from_argv
    assert patched.__wrapped__ is integration.original_run_from_argv
    integration.uninstall()
    try:
        assert BaseCommand.run_from_argv is patched.__wrapped__
        assert not hasattr(BaseCommand.run_from_argv, "__wrapped__")
    finally:
        integration.install(get_config())
    assert BaseCommand.run_from_argv.__wrapped__ is patched.__wrapped__


@pytest.mark.parametrize(("argv0", "program"), [
    ("/srv/app/manage.py", "manage.py"), ("/venv/bin/django-admin", "django-admin"),
    ("/usr/lib/python3/site-packages/django/__main__.py", "python -m django")])
def test_the_span_is_named_as_the_user_typed_the_program(argv0, program):
    assert commands.program_name(argv0) == program


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("option", ["--help", "-h", "--version"])
def test_a_run_that_only_prints_help_or_version_makes_no_span(option, capsys):
    """`manage.py migrate --help` exported a lone command span (and, with no collector,
    printed the 'nothing listens' line) for a run that did nothing."""
    with capture_spans() as spans:
        assert run(["manage.py", "outer", option]) == 0
    assert capsys.readouterr().out
    assert spans.records() == []
