"""The end-to-end harness itself: its waits are generous and a wait that runs out shows
what the processes logged (a flaky "spans did not arrive" must come with the reason)."""

from __future__ import annotations

import inspect
import sys

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
            receiver.wait_for(lambda spans: spans, timeout=0.2)
        stack.stop()
    message = str(raised.value)
    assert "spans did not arrive in 0.2s" in message
    assert "===== worker =====" in message and marker in message
