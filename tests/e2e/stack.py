"""Real processes for end-to-end tests: a database, a broker, gunicorn, Celery workers
and the pricing gRPC server.

Backends are chosen once per test run by ``backends()``: the real PostgreSQL and
RabbitMQ when they can be reached (``E2E_POSTGRES_URL``, an admin URL, default
the local ``postgres`` database; ``E2E_BROKER_URL`` or ``CELERY_BROKER_URL``), otherwise the embedded
ones: a SQLite file and kombu's serverless filesystem transport, still with real
worker processes and real message headers. ``TRACING_REQUIRE_SERVICES=1`` (set
by CI) turns an unreachable service into an error instead; ``TRACING_EMBEDDED=1``
picks the embedded backends without probing.

Every run gets its own database and its own queue (or broker folder), so
leftovers from an earlier (or a parallel) run never leak in.

Every wait here is bounded by ``DEADLINE`` (``E2E_DEADLINE`` seconds, default 120):
it only bounds a failure, so it is generous for a busy machine, and a wait that
runs out says what the processes logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from kombu import Connection

from project.processes import ROOT, ProcessGroup, free_port
from tracing_app.context.suppression import untraced
from tracing_app.devtools.receiver import OTLPGrpcReceiver, OTLPReceiver

ADMIN_URL = os.environ.get("E2E_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BROKER_URL = (os.environ.get("E2E_BROKER_URL") or os.environ.get("CELERY_BROKER_URL")
              or "amqp://guest:guest@127.0.0.1:5672//")
PROBE_TIMEOUT = 3
REDIS_URL = os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379")  # no database: each run picks its own
# Seconds any wait for a process, a readiness line or spans may take. Only a failing test
# waits this long; on CI's two busy cores a worker's first spans have taken over 30 s.
DEADLINE = float(os.environ.get("E2E_DEADLINE", "120"))


def run_id() -> str:
    return uuid.uuid4().hex[:10]


# -- choosing the backends -----------------------------------------------------


class ServicesUnavailable(RuntimeError):
    """TRACING_REQUIRE_SERVICES=1 and PostgreSQL or RabbitMQ cannot be reached."""


def postgres_problem() -> str:
    """Why the real PostgreSQL cannot be used ("" when it can)."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=PROBE_TIMEOUT):
            return ""
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


def redis_problem() -> str:
    """Why the real Redis cannot be used ("" when it can)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=PROBE_TIMEOUT).ping()
        return ""
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def require_redis(what: str) -> None:
    """Fail (TRACING_REQUIRE_SERVICES=1, CI) or skip, listed in the summary, without a reachable Redis."""
    import pytest

    problem = redis_problem()
    if not problem:
        return
    reason = f"{what} needs the real Redis at {REDIS_URL}: {problem}"
    if os.environ.get("TRACING_REQUIRE_SERVICES") == "1":
        pytest.fail(reason, pytrace=False)
    NEEDS_SERVICES.append(os.environ.get("PYTEST_CURRENT_TEST", what).rpartition(" ")[0] or what)
    pytest.skip(reason)


def rabbitmq_problem() -> str:
    """Why the real RabbitMQ cannot be used ("" when it can)."""
    try:
        with Connection(BROKER_URL, connect_timeout=PROBE_TIMEOUT) as conn:
            conn.ensure_connection(max_retries=1)
            return ""
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@dataclasses.dataclass(frozen=True)
class Backends:
    database: str  # "postgresql" or "sqlite"
    broker: str  # "rabbitmq" or "filesystem"
    why: tuple[str, ...] = ()  # why an embedded backend was chosen

    @property
    def embedded(self) -> bool:
        return self.database == "sqlite" and self.broker == "filesystem"

    def summary(self) -> str:
        database = {"postgresql": f"PostgreSQL ({ADMIN_URL.rpartition('@')[2]})", "sqlite": "SQLite (embedded)"}
        broker = {"rabbitmq": f"RabbitMQ ({BROKER_URL.rpartition('@')[2]})",
                  "filesystem": "kombu filesystem transport (embedded)"}
        text = f"database: {database[self.database]}; broker: {broker[self.broker]}"
        return text + "".join(f"\n  {reason}" for reason in self.why)


EMBEDDED = Backends("sqlite", "filesystem")


@functools.cache
def backends() -> Backends:
    """The backends of this test run, probed once."""
    if os.environ.get("TRACING_EMBEDDED") == "1":
        return dataclasses.replace(EMBEDDED, why=("TRACING_EMBEDDED=1",))
    problems = {"PostgreSQL": postgres_problem(), "RabbitMQ": rabbitmq_problem()}
    down = {name: problem for name, problem in problems.items() if problem}
    if down and os.environ.get("TRACING_REQUIRE_SERVICES") == "1":
        reasons = "; ".join(f"{name} is unreachable ({why})" for name, why in down.items())
        raise ServicesUnavailable(f"TRACING_REQUIRE_SERVICES=1 but {reasons}")
    return Backends(
        database="sqlite" if "PostgreSQL" in down else "postgresql",
        broker="filesystem" if "RabbitMQ" in down else "rabbitmq",
        why=tuple(f"{name} unreachable, embedded backend used: {why}" for name, why in down.items()),
    )


# -- databases -----------------------------------------------------------------


class Database:
    """A fresh PostgreSQL database, migrated, dropped on ``drop()``."""

    system = "postgresql"  # db.system.name of its spans

    def __init__(self, name: str) -> None:
        self.name = name
        base, _, _ = ADMIN_URL.rpartition("/")
        self.url = f"{base}/{name}"

    def create(self) -> Database:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self

    def drop(self) -> None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()


class SqliteDatabase:
    """A SQLite file in a directory of its own, removed on ``drop()``. Same interface as ``Database``."""

    system = "sqlite"

    def __init__(self, name: str) -> None:
        self.name = name
        self.folder = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.path = self.folder / "db.sqlite3"
        self.url = f"sqlite:///{self.path}"

    def create(self) -> SqliteDatabase:
        return self  # migrate creates the file

    def drop(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def query(self, sql: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()


# -- brokers -------------------------------------------------------------------


class RabbitBroker:
    url = BROKER_URL

    def env(self) -> dict[str, str]:
        return {}

    def transport_options(self) -> dict[str, object]:
        return {}

    def cleanup(self, *queues: str) -> None:
        """Remove this run's queues (and their exchanges) from RabbitMQ."""
        with Connection(BROKER_URL) as conn:
            channel = conn.channel()
            for name in queues:
                channel.queue_delete(name)
                channel.exchange_delete(name)


class FilesystemBroker:
    """kombu's filesystem transport in a folder of this run's own: no server, same message headers."""

    url = "filesystem://"

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="e2e-broker-"))

    def env(self) -> dict[str, str]:
        return {"CELERY_BROKER_FOLDER": str(self.folder)}

    def transport_options(self) -> dict[str, object]:
        """What project/settings.py configures from CELERY_BROKER_FOLDER, for a publisher in the test process."""
        (self.folder / "messages").mkdir(parents=True, exist_ok=True)
        return {"data_folder_in": str(self.folder / "messages"), "data_folder_out": str(self.folder / "messages"),
                "control_folder": str(self.folder / "control")}

    def cleanup(self, *queues: str) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class RedisBroker:
    """Redis as the Celery broker (and, with ``result_backend``, result backend): a database
    number and a key prefix of this run's own (``global_keyprefix``), deleted at cleanup."""

    def __init__(self) -> None:
        import random

        self.db = random.randint(1, 15)  # 0 is where a developer's own things usually live
        self.prefix = f"e2e-{run_id()}:"
        self.url = f"{REDIS_URL}/{self.db}"

    def env(self) -> dict[str, str]:
        return {"CELERY_BROKER_KEY_PREFIX": self.prefix}

    def transport_options(self) -> dict[str, object]:
        """What project/settings.py configures from CELERY_BROKER_KEY_PREFIX, for a publisher in the test process."""
        return {"global_keyprefix": self.prefix}

    def cleanup(self, *queues: str) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


USED: set[tuple[str, str]] = set()  # (database, broker) this run's stacks ran on, for the terminal summary


def make_database(chosen: Backends, broker: str = "") -> Database | SqliteDatabase:
    """A fresh database of ``chosen``'s kind; ``broker`` is the broker it runs with when not chosen's."""
    USED.add((chosen.database, broker or chosen.broker))
    name = f"e2e_{run_id()}"
    return (SqliteDatabase(name) if chosen.database == "sqlite" else Database(name)).create()


NEEDS_SERVICES: list[str] = []  # tests that did not run for want of the real servers, for the summary


def require_real_services(what: str) -> Backends:
    """Backends for a test that is about PostgreSQL or RabbitMQ themselves (SKIP LOCKED, AMQP
    specifics, benchmarks): the embedded backends cannot stand in. Without the real servers
    the test does not run and the run's summary lists it; under TRACING_REQUIRE_SERVICES=1
    (CI) it fails instead."""
    import pytest

    chosen = backends()
    if chosen.database == "postgresql" and chosen.broker == "rabbitmq":
        return chosen
    reason = f"{what} needs the real PostgreSQL and RabbitMQ (this run: {chosen.database}, {chosen.broker})"
    if os.environ.get("TRACING_REQUIRE_SERVICES") == "1":
        pytest.fail(reason, pytrace=False)
    NEEDS_SERVICES.append(os.environ.get("PYTEST_CURRENT_TEST", what).rpartition(" ")[0] or what)
    pytest.skip(reason)


def make_broker(chosen: Backends, kind: str = "") -> RabbitBroker | FilesystemBroker | RedisBroker:
    """The broker ``chosen`` picked, or Redis when ``kind == "redis"`` (whatever was chosen)."""
    if kind == "redis":
        require_redis("a stack on Redis")
        return RedisBroker()
    return FilesystemBroker() if chosen.broker == "filesystem" else RabbitBroker()


class Process(ProcessGroup):
    """A child process whose output goes to a temporary file, shown when a test fails."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        with tempfile.NamedTemporaryFile(prefix=f"e2e-{name}-", suffix=".log", delete=False) as log:
            super().__init__(name, argv, env, Path(log.name), cwd)

    def wait_output(self, text: str, timeout: float = DEADLINE) -> None:
        """Wait until ``text`` appears in the process's output (a readiness line)."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not print {text!r} in {timeout}s:\n{self.output()}")
            time.sleep(0.1)

    def wait_for_output(self, text: str, timeout: float = DEADLINE) -> str:
        """Wait until ``text`` appears in the process's output; return the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = self.output()
            if text in output:
                return output
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise TimeoutError(f"{text!r} not in {self.name}'s output:\n{self.output()[-4000:]}")


class StackReceiver(OTLPReceiver):
    """The end-to-end tests' OTLP receiver: ``wait_for`` waits ``DEADLINE`` by default, and
    when spans do not arrive its error carries the logs of the processes of every
    ``Stack`` exporting to it (the worker's log says why its spans are missing)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stacks: list[Stack] = []

    def wait_for(self, predicate: Any, timeout: float = DEADLINE) -> list[Any]:
        try:
            return super().wait_for(predicate, timeout)
        except TimeoutError as exc:
            logs = "\n".join(stack.logs() for stack in self.stacks) or "(no process was started)"
            raise TimeoutError(f"{exc}\nWhat the processes logged:\n{logs}") from None


@contextlib.contextmanager
def grpc_receiver() -> Iterator[tuple[OTLPReceiver, str]]:
    """An OTLP/gRPC receiver; yields (store, endpoint): its spans land in ``store`` (``wait_for``)."""
    store = StackReceiver().start()  # (its HTTP side is unused; started so that stop() returns)
    server = OTLPGrpcReceiver("127.0.0.1", 0, store.add).start()
    try:
        yield store, server.endpoint
    finally:
        server.stop()
        store.stop()


class Stack:
    """The demo's processes against one database, one queue and one OTLP receiver."""

    def __init__(self, database: Database | SqliteDatabase, broker: RabbitBroker | FilesystemBroker,
                 queue: str, otlp_endpoint: str, receiver: StackReceiver | None = None) -> None:
        self.database = database
        self.broker = broker
        self.queue = queue
        # order.* events: a topic exchange and the notifications queue, named per run.
        self.events_exchange = f"{queue}.events"
        self.notifications_queue = f"{queue}.notifications"
        self.otlp_endpoint = otlp_endpoint
        self.processes: list[Process] = []
        # Where web and worker call pricing; start_pricing() listens there. Set
        # before they start (their env carries it).
        self.pricing_target = f"127.0.0.1:{free_port()}"
        self._publisher: Any = None
        if receiver is not None:  # its timeouts show these processes' logs
            receiver.stacks.append(self)

    def env(self, service_name: str | None, **extra: str) -> dict[str, str]:
        """The environment of one of this stack's processes; ``service_name`` None: no
        OTEL_SERVICE_NAME, the process is named by TRACING's rule (pipeline/resource.py)."""
        env = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("OTEL_", "DJANGO_", "PYTEST_", "CELERY_")) and key != "DATABASE_URL"
        }
        env.update({
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": self.database.url,
            "CELERY_BROKER_URL": self.broker.url,
            **self.broker.env(),
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "EVENTS_EXCHANGE": self.events_exchange,
            "NOTIFICATIONS_QUEUE": self.notifications_queue,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "PRICING_TARGET": self.pricing_target,
            "PYTHONUNBUFFERED": "1",
        })
        if service_name is not None:
            env["OTEL_SERVICE_NAME"] = service_name
        env.update(extra)
        return env

    def start(self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path = ROOT) -> Process:
        process = Process(name, argv, env, cwd)
        self.processes.append(process)
        return process

    def manage(self, *args: str, timeout: float = DEADLINE, service_name: str | None = "shop-manage",
               **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(service_name, **env),
            capture_output=True, text=True, timeout=timeout,
        )

    def start_web(self, *extra: str, service_name: str | None = "shop-web", **env: str) -> WebServer:
        port = free_port()
        process = self.start(
            "web",
            [sys.executable, "-m", "gunicorn", "project.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", *extra],
            self.env(service_name, **env),
        )
        web = WebServer(f"http://127.0.0.1:{port}", process)
        web.wait_ready()
        return web

    def start_asgi_web(self, server: str, *extra: str, service_name: str | None = "shop-web", **env: str) -> WebServer:
        """``project.asgi`` under ``server``: "uvicorn", or "gunicorn" with the uvicorn worker."""
        port = free_port()
        argv = {
            "uvicorn": ["-m", "uvicorn", "project.asgi:application", "--port", str(port), "--no-access-log"],
            "gunicorn": ["-m", "gunicorn", "-k", "uvicorn_worker.UvicornWorker", "project.asgi:application",
                         "-b", f"127.0.0.1:{port}", "-w", "1"],
        }[server]
        process = self.start(f"web ({server}, ASGI)", [sys.executable, *argv, *extra], self.env(service_name, **env))
        web = WebServer(f"http://127.0.0.1:{port}", process)
        web.wait_ready()
        return web

    def start_worker(self, *extra: str, service_name: str | None = "shop-worker", **env: str) -> Process:
        """A Celery worker on this stack's queue; it also runs the test tasks in ``tests/e2e/tasks.py``."""
        return self.start(
            "worker",
            [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", self.queue, "-l", "info",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--include", "tests.e2e.tasks", *extra],
            self.env(service_name, **env),
        )

    def start_relay(self, *extra: str, service_name: str = "shop-relay", **env: str) -> Process:
        return self.start("relay", [sys.executable, "manage.py", "relay_outbox", "--interval", "0.2", *extra],
                          self.env(service_name, **env))

    def start_consumer(self, service_name: str = "shop-notifications", **env: str) -> Process:
        return self.start("consumer", [sys.executable, "manage.py", "consume_events"], self.env(service_name, **env))

    def start_pricing(self, service_name: str = "shop-pricing", **env: str) -> Process:
        """``manage.py serve_pricing`` on ``pricing_target``, returned once it accepts gRPC connections."""
        process = self.start(
            "pricing", [sys.executable, "manage.py", "serve_pricing", "--listen", self.pricing_target],
            self.env(service_name, **env),
        )
        wait_for_grpc(self.pricing_target, process)
        return process

    def publish(self, task_name: str, *args: object, **options: object) -> str:
        """Send a task to this stack's queue and broker from the test process; returns the task id."""
        if self._publisher is None:
            from celery import Celery

            self._publisher = Celery("e2e-publisher", broker=self.broker.url, set_as_current=False)
            self._publisher.conf.broker_transport_options = self.broker.transport_options()
        return self._publisher.send_task(task_name, args=list(args), queue=self.queue, **options).id

    def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} =====\n{p.output()[-6000:]}" for p in self.processes)


def wait_for_grpc(target: str, process: Process, timeout: float = DEADLINE) -> None:
    """Until a gRPC channel to ``target`` is READY (an HTTP/2 handshake with the server)."""
    import grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.output()}")
        with grpc.insecure_channel(target) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return
            except grpc.FutureTimeoutError:
                pass
    raise TimeoutError(f"{process.name} not ready in {timeout}s:\n{process.output()}")


class WebServer:
    def __init__(self, url: str, process: Process) -> None:
        self.url = url
        self.process = process

    def wait_ready(self, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.popen.poll() is not None:
                raise RuntimeError(f"web server exited:\n{self.process.output()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"web server not ready in {timeout}s:\n{self.process.output()}")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            # A client from outside (curl, a browser): the test process's own urllib
            # instrumentation must not add its context to the headers the test chose.
            with untraced(), urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


class Recorder:
    """An HTTP service on loopback (a partner's webhook) that answers 204 and keeps what it got."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                recorder.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                recorder.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
