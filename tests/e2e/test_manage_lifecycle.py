"""manage.py commands and runserver flush their spans at exit, and never hang
there when the collector is down or silent; tracing_check --worker proves that a
real worker continues the canary's trace."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tracing_app.devtools.receiver import Fault

from .stack import DEADLINE, ROOT, free_port

NO_PERIODIC_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "60000"}
MAKE_SPAN = "from tracing_app import get_tracer; get_tracer().start_span('command work').end()"


def test_command_spans_are_flushed_at_exit(stack, otlp):
    result = stack.manage("shell", "-c", MAKE_SPAN, **NO_PERIODIC_EXPORT)
    assert result.returncode == 0, result.stderr
    assert [s.name for s in otlp.wait_for(lambda spans: spans)] == ["command work"]


def test_command_exits_within_the_shutdown_bound_when_the_collector_never_answers(stack, otlp):
    otlp.fault = Fault(delay=120.0)
    # If exit waited for the collector, this would take 120 s and hit the 60 s timeout.
    result = stack.manage("shell", "-c", MAKE_SPAN, **NO_PERIODIC_EXPORT)
    assert result.returncode == 0, result.stderr
    assert otlp.answered == 0
    assert "1 span(s) not exported at shutdown (bound: SHUTDOWN_TIMEOUT=3s)" in result.stderr


def test_makemigrations_with_nothing_listening_exits_without_waiting(stack):
    refused = f"http://127.0.0.1:{free_port()}"
    result = stack.manage("makemigrations", "--check", "--dry-run",
                          OTEL_EXPORTER_OTLP_ENDPOINT=refused)
    assert result.returncode == 0, result.stdout + result.stderr
    # Its query spans were tried once more at exit, refused, and dropped right away: nothing
    # listens on this machine, which is development without a collector, so one line says so
    # (not a second one at exit) and the bound never ran out.
    lines = [line for line in result.stderr.splitlines() if "tracing_app" in line]
    assert len(lines) <= 1, result.stderr
    assert all("nothing listens at" in line for line in lines), result.stderr


@pytest.mark.parametrize("endpoint", ["127.0.0.1:4318", "ftp://127.0.0.1:4318"])
def test_command_with_an_exporter_that_cannot_be_built_says_so_once(stack, endpoint):
    code = MAKE_SPAN + "; import tracing_app; print('flushed', tracing_app.force_flush())"
    result = stack.manage("shell", "-c", code, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **NO_PERIODIC_EXPORT)
    assert result.returncode == 0, result.stderr
    assert "flushed False" in result.stdout, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if "has no working span exporter" in line]
    assert len(lines) == 1 and "manage.py shell" in lines[0] and "http:// or https://" in lines[0], result.stderr


def test_runserver_with_autoreloader_flushes_at_ctrl_c(stack, otlp):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"], cwd=ROOT,
        env=stack.env("shop-dev", **NO_PERIODIC_EXPORT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, text=True,
        # A terminal's Ctrl-C reaches a process whose SIGINT is not ignored; a CI job run in the
        # background inherits SIG_IGN for it, which Python keeps (no KeyboardInterrupt at all).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        status = wait_and_get(f"http://127.0.0.1:{port}/api/orders/999/", process)
        assert status == 404
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the reloader and its child both get it
        try:
            output, _ = process.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired as timeout:
            # Seen once in a loaded full run, never alone: show where each process of the group stands.
            raise AssertionError(f"runserver did not exit after Ctrl-C:\n{stacks_of_group(process.pid)}") from timeout
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    spans = otlp.wait_for(lambda spans: any(s.kind == "SERVER" for s in spans))
    server = next(s for s in spans if s.kind == "SERVER")
    assert (server.name, server.service) == ("GET api/orders/<int:pk>/", "shop-dev"), output


def test_runserver_with_an_exporter_that_cannot_be_built_says_so_once(stack):
    port = free_port()
    process = subprocess.Popen(
        # --skip-checks: the system check (E009) stops runserver on this endpoint; the run-time
        # report is for a process that starts anyway (checks skipped, or another environment).
        [sys.executable, "manage.py", "runserver", "--skip-checks", f"127.0.0.1:{port}"], cwd=ROOT,
        env=stack.env("shop-dev", OTEL_EXPORTER_OTLP_ENDPOINT="ftp://127.0.0.1:4318", OTEL_BSP_SCHEDULE_DELAY="100"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True,
    )
    try:
        for _ in range(3):
            assert wait_and_get(f"http://127.0.0.1:{port}/api/orders/999/", process) == 404
        time.sleep(1)  # three schedule delays: the export thread tried (and could not) send them
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=DEADLINE)
    lines = [line for line in output.splitlines() if "has no working span exporter" in line]
    assert len(lines) == 1 and "manage.py runserver" in lines[0], output


def stacks_of_group(pgid):
    """Python stacks of every process in a process group (py-spy, pinned in requirements/dev.txt)."""
    pids = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    dumps = []
    for pid in pids:
        dump = subprocess.run([str(Path(sys.executable).with_name("py-spy")), "dump", "--pid", pid],
                              capture_output=True, text=True, timeout=DEADLINE)
        dumps.append(f"--- pid {pid}\n{dump.stdout}{dump.stderr}")
    return "\n".join(dumps) or "no process left in the group"


def wait_and_get(url, process, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # so that its output can be read to the end
    raise TimeoutError(f"runserver did not answer in {timeout}s:\n{process.communicate()[0]}")


def test_tracing_check_worker_confirms_the_canary_ran_in_the_same_trace(stack, otlp):
    stack.start_worker("-P", "prefork", "-c", "1")
    result = stack.manage("tracing_check", "--worker", "--queue", stack.queue, "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"answered after \d+\.\ds: ok, propagation works", result.stdout), result.stdout
    trace_id = result.stdout.split("canary task sent in trace ")[1].split(";")[0]
    spans = otlp.wait_for(lambda spans: any(s.name == "process tracing_app.canary" for s in spans))
    worker_span = next(s for s in spans if s.name == "process tracing_app.canary")
    assert worker_span.trace_id == trace_id and worker_span.service == "shop-worker"


def test_tracing_check_worker_fails_when_no_worker_answers(stack, otlp):
    result = stack.manage("tracing_check", "--worker", "--queue", stack.queue, "--timeout", "2")
    assert result.returncode != 0
    assert "no worker ran the canary task within 2s" in result.stderr and "hint:" in result.stderr


def queued_messages(queue):
    from kombu import Connection

    from .stack import BROKER_URL

    with Connection(BROKER_URL) as conn:
        return conn.default_channel.queue_declare(queue, passive=True).message_count


@pytest.mark.parametrize("stack", ["default", "embedded"], indirect=True)
def test_tracing_check_worker_leaves_no_canary_behind(stack, otlp):
    result = stack.manage("tracing_check", "--worker", "--queue", stack.queue, "--timeout", "2")
    assert result.returncode != 0
    assert re.search(r"within 2s \(waited \d+\.\d+s\); the canary expires", result.stderr), result.stderr
    if stack.broker.url.startswith("amqp"):
        # RabbitMQ drops the expired canary itself (per-message TTL): the queue empties with no consumer.
        deadline = time.monotonic() + 60
        while queued_messages(stack.queue) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert queued_messages(stack.queue) == 0
    # A worker started afterwards never runs it: the queue is consumed in order, so once a
    # task published after the canary has run, the canary was dropped or discarded unrun.
    stack.start_worker("-P", "solo")
    task_id = stack.publish("e2e.sleep", 0)
    spans = otlp.wait_for(lambda spans: any(s.attributes.get("messaging.message.id") == task_id
                                            and s.kind == "CONSUMER" for s in spans))
    # A broker without per-message TTL delivers it; the worker then discards it unrun, and
    # its CONSUMER span says so (REVOKED, as for any expired task).
    canary = [s for s in spans if s.name == "process tracing_app.canary"]
    assert all(s.attributes.get("celery.task.state") == "REVOKED" for s in canary), canary
    if stack.broker.url.startswith("amqp"):
        assert not canary
