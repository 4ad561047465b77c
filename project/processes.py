"""Starting and stopping a process group: what the embedded demo (``project.demo``), the
end-to-end tests (``tests/e2e/stack.py``) and the benchmarks share.

Each child runs in a session of its own, so stopping it stops what it forked too
(gunicorn's and Celery's workers). Not part of tracing_app: the library starts no
processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProcessGroup:
    """A child process leading its own process group, its output in ``log`` (or a text
    pipe, ``popen.stdout``, when ``log`` is None)."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path | None,
                 cwd: Path = ROOT) -> None:
        self.name = name
        self.log = log
        self._output: IO[bytes] | None = open(log, "wb") if log else None  # noqa: SIM115 (closed in stop())
        self.popen = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=self._output or subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True, text=log is None)

    def output(self) -> str:
        """What the process has written so far ("" when it writes to a pipe)."""
        return self.log.read_text(errors="replace") if self.log else ""

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a warm shutdown that flushes spans), then SIGKILL whatever is left of the group.

        SIGTERM goes to the main process only: gunicorn's and Celery's masters stop their
        children themselves; a Celery pool child that gets SIGTERM directly dies mid-shutdown
        and leaves its master waiting."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(5)
        if self._output:
            self._output.close()
