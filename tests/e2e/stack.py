"""Real processes for end-to-end tests: a database, a queue, gunicorn and Celery workers.

Every run gets its own PostgreSQL database and its own RabbitMQ queue name, so
leftovers from an earlier (or a parallel) run never leak in. Service addresses
come from the environment: ``E2E_POSTGRES_URL`` (an admin URL, default the
local ``postgres`` database) and ``CELERY_BROKER_URL``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
ADMIN_URL = os.environ.get("E2E_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_id() -> str:
    return uuid.uuid4().hex[:10]


class Database:
    """A fresh PostgreSQL database, migrated, dropped on ``drop()``."""

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


def delete_queues(*names: str) -> None:
    """Remove this run's queues (and their exchanges) from RabbitMQ."""
    from kombu import Connection

    with Connection(BROKER_URL) as conn:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)
            channel.exchange_delete(name)


class Process:
    """A child process whose output goes to a temporary file, shown when a test fails."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"e2e-{name}-", suffix=".log", delete=False)
        self.popen = subprocess.Popen(
            list(argv), cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a warm shutdown for Celery and gunicorn), then SIGKILL the whole group."""
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


class Stack:
    """The demo's processes against one database, one queue and one OTLP receiver."""

    def __init__(self, database: Database, queue: str, otlp_endpoint: str) -> None:
        self.database = database
        self.queue = queue
        self.otlp_endpoint = otlp_endpoint
        self.processes: list[Process] = []

    def env(self, service_name: str, **extra: str) -> dict[str, str]:
        env = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("OTEL_", "DJANGO_", "PYTEST_")) and key != "DATABASE_URL"
        }
        env.update({
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": self.database.url,
            "CELERY_BROKER_URL": BROKER_URL,
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "OTEL_SERVICE_NAME": service_name,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(extra)
        return env

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> Process:
        process = Process(name, argv, env)
        self.processes.append(process)
        return process

    def manage(self, *args: str, timeout: float = 120.0, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env("shop-manage", **env),
            capture_output=True, text=True, timeout=timeout,
        )

    def start_web(self, *extra: str, service_name: str = "shop-web", **env: str) -> WebServer:
        port = free_port()
        process = self.start(
            "web",
            [sys.executable, "-m", "gunicorn", "project.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", *extra],
            self.env(service_name, **env),
        )
        web = WebServer(f"http://127.0.0.1:{port}", process)
        web.wait_ready()
        return web

    def start_worker(self, *extra: str, service_name: str = "shop-worker", **env: str) -> Process:
        return self.start(
            "worker",
            [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", self.queue, "-l", "info",
             "--without-gossip", "--without-mingle", "--without-heartbeat", *extra],
            self.env(service_name, **env),
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} =====\n{p.output()[-6000:]}" for p in self.processes)


class WebServer:
    def __init__(self, url: str, process: Process) -> None:
        self.url = url
        self.process = process

    def wait_ready(self, timeout: float = 30.0) -> None:
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
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()
