"""One trace per manage.py command, at a real OTLP receiver from real processes
(integrations/django/commands.py): its queries are children of the command's span;
housekeeping commands make no span at all; servers get no command span, and
runserver's autoreloader parent makes none.

A command process flushes its spans before it exits, so once it has returned, the
receiver holds everything it will ever send: absence is checked right then."""

import os
import signal
import subprocess
import sys

import pytest

from .stack import ROOT, free_port
from .test_manage_lifecycle import DEADLINE, wait_and_get


def traces(spans):
    found = {}
    for span in spans:
        found.setdefault(span.trace_id, []).append(span)
    return found


@pytest.mark.parametrize(("args", "options"), [
    (("migrate", "--noinput", "--database", "default"), ["database", "interactive"]),
    (("migrate", "tracing_app", "-v", "2"), ["app_label", "verbosity"]),
])
def test_a_command_run_is_one_trace_with_its_queries_as_children(stack, otlp, args, options):
    result = stack.manage(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    spans = otlp.spans
    [trace] = traces(spans).values()
    [root] = [s for s in trace if not s.parent_id]
    assert (root.name, root.kind, root.service) == ("manage.py migrate", "INTERNAL", "shop-manage")
    assert root.attributes["django.command.name"] == "migrate"
    assert list(root.attributes["django.command.options"]) == options
    assert root.attributes["process.exit.code"] == 0 and not root.error
    assert root.attributes["process.executable.name"].startswith("python")
    # Names, never values: no argument's value is anywhere on the span.
    values = {str(v) for v in root.attributes.values()} | {str(v) for v in root.attributes["django.command.options"]}
    assert not {"default", "tracing_app", "2"} & values
    queries = [s for s in trace if s is not root]
    assert len(queries) > 1 and all(s.kind == "CLIENT" for s in queries)
    ids = {s.span_id for s in trace}
    assert all(s.parent_id in ids for s in queries)


@pytest.mark.parametrize(("args", "code"), [(("migrate", "no_such_app"), 1), (("migrate", "--no-such-option"), 2)])
def test_a_failed_command_is_an_error_with_its_exit_code(stack, otlp, args, code):
    result = stack.manage(*args)
    assert result.returncode == code
    [root] = [s for s in otlp.spans if not s.parent_id]
    assert root.error and root.attributes["process.exit.code"] == code
    assert root.attributes["error.type"] == str(code)


@pytest.mark.parametrize("args", [("showmigrations",), ("check", "--database", "default"),
                                  ("makemigrations", "--check", "--dry-run")])
def test_housekeeping_commands_make_no_span(stack, otlp, args):
    result = stack.manage(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert otlp.spans == []
    # The same processes do export: a traced command right after is seen.
    assert stack.manage("migrate").returncode == 0
    assert {s.name for s in otlp.spans if not s.parent_id} == {"manage.py migrate"}


def test_untraced_commands_are_a_setting(stack, otlp):
    env = {"DJANGO_SETTINGS_MODULE": "tests.e2e.command_settings"}  # UNTRACED_COMMANDS = ["migrate"]
    assert stack.manage("migrate", **env).returncode == 0
    assert otlp.spans == []
    result = stack.manage("showmigrations", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {s.name for s in otlp.spans if not s.parent_id} == {"manage.py showmigrations"}


def test_relay_outbox_gets_no_command_span(stack, otlp):
    result = stack.manage("relay_outbox", "--once")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "published 0 event(s)" in result.stdout
    assert [s for s in otlp.spans if s.name.startswith("manage.py")] == []


def test_runserver_parent_makes_no_span_and_the_child_traces_requests(stack, otlp):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"], cwd=ROOT,
        env=stack.env("shop-dev", OTEL_BSP_SCHEDULE_DELAY="100"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True, text=True,
    )
    try:
        assert wait_and_get(f"http://127.0.0.1:{port}/api/orders/999/", process) == 404
        spans = otlp.wait_for(lambda spans: any(s.kind == "SERVER" for s in spans), timeout=DEADLINE)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=DEADLINE)[0]
    spans = otlp.spans
    [server] = [s for s in spans if s.kind == "SERVER"]
    # Everything belongs to the request: no command span from the reloader or its child, no lone
    # start-up queries (system checks, check_migrations).
    assert {s.trace_id for s in spans} == {server.trace_id}, ([(s.name, s.parent_id) for s in spans], output)
    assert server.resource["tracing_app.process.role"] == "web"
