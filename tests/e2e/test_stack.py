"""The end-to-end harness itself: its waits are generous and a wait that runs out shows
what the processes logged (a flaky "spans did not arrive" must come with the reason)."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest

from .stack import DEADLINE, Process, Stack, StackReceiver, WebServer, run_id, wait_for_grpc


def test_every_wait_defaults_to_the_generous_deadline():
    assert DEADLINE >= 120
    for wait in (StackReceiver.wait_for, Process.wait_output, Process.wait_for_output, Stack.manage,
                 WebServer.wait_ready, wait_for_grpc):
        assert inspect.signature(wait).parameters["timeout"].default == DEADLINE, wait


def test_spans_that_do_not_arrive_fail_with_the_logs_of_the_stacks_processes():
    marker = f"worker says {run_id()}"
    with StackReceiver() as receiver:
        stack = Stack(database=None, broker=None, queue="unused", otlp_endpoint=receiver.endpoint, receiver=receiver)
        process = stack.start("worker", [sys.executable, "-c", f"print({marker!r})"], env={})
        process.wait(DEADLINE)
        with pytest.raises(TimeoutError) as raised:
            receiver.wait_for(lambda spans: spans, timeout=0.2)  # short on purpose: nothing will come
        stack.stop()
    message = str(raised.value)
    assert "spans did not arrive in 0.2s" in message
    assert "===== worker =====" in message and marker in message


def test_no_end_to_end_test_waits_less_than_the_deadline():
    # A wait shorter than DEADLINE is a flake on a busy machine; DEADLINE is the one knob
    # (a wait meant to run out says so: "on purpose").
    short = re.compile(r"(?:(?:wait_for|wait_output|wait_for_output|wait_ready|communicate)\([^\n]*?timeout="
                       r"|\.wait\()(\d+(?:\.\d+)?)\)")
    found = [f"{path.name}:{number}: {line.strip()}" for path in sorted(Path(__file__).parent.glob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if (match := short.search(line)) and float(match[1]) < DEADLINE and "on purpose" not in line]
    assert found == []
