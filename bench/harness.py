"""What the benchmarks share: the stack they run on, the sink process, statistics, and BENCHMARKS.md sections."""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.e2e.stack import (
    ADMIN_URL,
    BROKER_URL,
    ROOT,
    Database,
    Process,
    RabbitBroker,
    Stack,
    WebServer,
    free_port,
    run_id,
)

from .sink import read_counts

BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PACKAGES = ("django", "celery", "kombu", "psycopg", "gunicorn", "uvicorn", "opentelemetry-sdk",
            "opentelemetry-exporter-otlp-proto-http", "opentelemetry-instrumentation-django", "protobuf")
# Seconds a benchmark's server or worker may take to get ready: only a failed start waits this
# long, and the modes boot side by side on a shared two-core machine (the most any benchmark allowed).
READY_TIMEOUT = 120.0


class Sink:
    """``bench.sink`` in its own process; ``counts()`` reads spans received per service."""

    def __init__(self, discard: bool = False, defer: bool = False) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        flags = ["--discard"] * discard + ["--defer"] * defer
        argv = [sys.executable, "-m", "bench.sink", str(self.port), *flags]
        self.process = Process("sink", argv, dict(os.environ))
        deadline = time.monotonic() + 20
        while True:
            try:
                read_counts(self.endpoint)
                return
            except OSError:
                if time.monotonic() > deadline or self.process.popen.poll() is not None:
                    raise RuntimeError(f"sink did not start:\n{self.process.output()}") from None
                time.sleep(0.1)

    def counts(self) -> dict[str, int]:
        return read_counts(self.endpoint)

    def stop(self) -> None:
        self.process.stop()


class BenchStack(Stack):
    """The demo's stack for one benchmark run, used as a context manager.

    Entering creates a PostgreSQL database ``<name>_<id>``, migrates it (``RuntimeError``
    with migrate's output when that fails) and starts the pricing gRPC service, untraced:
    one server for every mode, so its cost is the same in each and only the callers'
    tracing differs. The stack's queue is ``<name>-<id>`` on RabbitMQ; its processes
    export to ``otlp_endpoint``. Leaving stops every process (SIGTERM, then SIGKILL),
    drops the database and deletes the stack's queue and ``queues``; when the block
    raised, what every process logged is printed to stderr first.
    """

    def __init__(self, otlp_endpoint: str, name: str = "bench", queues: Sequence[str] = ()) -> None:
        super().__init__(Database(f"{name}_{run_id()}"), RabbitBroker(), f"{name}-{run_id()}", otlp_endpoint)
        self.queues = tuple(queues)

    def __enter__(self) -> BenchStack:
        self.database.create()
        try:
            migrate = self.manage("migrate", "--noinput", OTEL_SDK_DISABLED="true")
            if migrate.returncode != 0:
                raise RuntimeError(migrate.stdout + migrate.stderr)
            self.start_pricing(DJANGO_SETTINGS_MODULE="bench.settings_untraced")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            print(self.logs(), file=sys.stderr)
        self.stop()
        self.database.drop()
        self.broker.cleanup(self.queue, *self.queues)

    def measured_env(self, service: str, **extra: str) -> dict[str, str]:
        """``env()`` without the end-to-end tests' 200 ms batch delay: the benchmarks
        measure the defaults a user gets."""
        env = self.env(service, **extra)
        env.pop("OTEL_BSP_SCHEDULE_DELAY")
        return env

    def start_gunicorn(self, service: str, app: str, *options: str, **env: str) -> WebServer:
        """gunicorn serving ``app`` on a free loopback port, as process and service ``service``;
        ``options`` go before ``-b``. Returns at once: start them all, then ``wait_ready``."""
        port = free_port()
        argv = [sys.executable, "-m", "gunicorn", app, *options, "-b", f"127.0.0.1:{port}"]
        return WebServer(f"http://127.0.0.1:{port}", self.start(service, argv, self.measured_env(service, **env)))

    def wait_ready(self, *webs: WebServer) -> None:
        """Until each of ``webs`` answers /healthz, each within ``READY_TIMEOUT`` seconds.

        ``RuntimeError`` with its output when one exits; ``TimeoutError`` as ``logs_on_timeout``.
        """
        for web in webs:
            with self.logs_on_timeout():
                web.wait_ready(timeout=READY_TIMEOUT)

    @contextlib.contextmanager
    def logs_on_timeout(self) -> Iterator[None]:
        """A ``TimeoutError`` inside is raised again with what every process of the stack logged:
        a server that never got ready, or a worker that never took its tasks, says why there."""
        try:
            yield
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nWhat the processes logged:\n{self.logs()}") from None


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads (the export thread included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (0 < q <= 100); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _server_versions() -> str:
    parts = []
    try:
        import psycopg

        with psycopg.connect(ADMIN_URL, connect_timeout=5) as conn:
            parts.append("PostgreSQL " + str(conn.execute("show server_version").fetchone()[0]))
    except Exception as exc:  # the header is informative; a benchmark reports the real failure
        parts.append(f"PostgreSQL unknown ({type(exc).__name__})")
    try:
        from kombu import Connection

        with Connection(BROKER_URL, connect_timeout=5) as conn:
            conn.connect()
            props = conn.connection.server_properties
            parts.append(f"RabbitMQ {props.get('version', '?')}")
    except Exception as exc:
        parts.append(f"RabbitMQ unknown ({type(exc).__name__})")
    return ", ".join(parts)


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        return match.group(1).strip() if match else platform.processor()
    except OSError:
        return platform.processor()


def _memory_gb() -> str:
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        return f"{kb / 1024 / 1024:.0f} GB"
    except (OSError, AttributeError):
        return "?"


def environment() -> str:
    """Machine, versions and commit: printed with every result."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    # BENCHMARKS.md itself is rewritten by each benchmark in turn: not a change to the code measured.
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":!BENCHMARKS.md"], capture_output=True, text=True).stdout.strip()
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join([
        f"- Run: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"commit {commit}{' (+local changes)' if dirty else ''}",
        f"- Machine: {_cpu_model()}, {os.cpu_count()} cores, {_memory_gb()} RAM, {platform.system()} "
        f"{platform.release()}; load average before the run {load}",
        f"- Python {platform.python_version()}; {versions}",
        f"- Services: {_server_versions()}",
    ])


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def write_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the generated section ``name`` of BENCHMARKS.md (append it when new).

    Text outside the ``<!-- generated: name -->`` markers is hand-written and kept.
    """
    start, end = f"<!-- generated: {name} -->", f"<!-- /generated: {name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before, _, rest = text.partition(start)
        _, _, after = rest.partition(end)
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
