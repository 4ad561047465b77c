"""The embedded demo: ``make demo`` (``python -m project.demo``), nothing but Python needed.

Runs the demo stack as separate processes on embedded backends: a SQLite file
and kombu's filesystem transport (no server; the task messages carry the same
headers as over AMQP). ``manage.py tracing_tail`` receives the spans and prints
each finished trace; the web server (gunicorn), a Celery worker, celery beat (a
periodic task every few seconds) and the pricing gRPC server export to it through
``OTEL_EXPORTER_OTLP_ENDPOINT``, and so do the notifications consumer
(``consume_events``) and the outbox relay (``relay_outbox``), which starts once the
orders are handled so that each order.created event visibly waited in the outbox. A scripted set of requests runs,
then everything is stopped and the command exits: 0 when every step did what
it should, 1 otherwise (with the processes' logs).

Everything lives in ``--data-dir`` (default ``.demo/``), which is emptied at start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from project.processes import ROOT, ProcessGroup, free_port

READY_TIMEOUT = 60.0
BEAT_INTERVAL = 5  # seconds between celery beat's sends of inventory.reject_stale_orders


class Demo:
    def __init__(self, data_dir: Path, asgi: bool = False) -> None:
        self.data_dir = data_dir
        self.asgi = asgi
        self.children: list[ProcessGroup] = []
        self.web_url = ""
        self.tail_endpoint = ""
        self.pricing_target = f"127.0.0.1:{free_port()}"
        self.forwarder: threading.Thread | None = None

    def env(self, service: str = "shop-manage", **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DJANGO_", "CELERY_"))}
        env.update({
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": f"sqlite:///{self.data_dir / 'shop.sqlite3'}",
            "CELERY_BROKER_URL": "filesystem://",
            "CELERY_BROKER_FOLDER": str(self.data_dir / "broker"),
            "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.tail_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # spans reach the tail within 0.2 s
            "PRICING_TARGET": self.pricing_target,
            "PYTHONUNBUFFERED": "1",
        })
        env.update(extra)
        return env

    def start(self, name: str, argv: list[str], env: dict[str, str], log: bool = True) -> ProcessGroup:
        child = ProcessGroup(name, argv, env, self.data_dir / f"{name}.log" if log else None)
        self.children.append(child)
        return child

    def say(self, text: str) -> None:
        print(f"demo: {text}", flush=True)

    def run(self) -> bool:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        manage = [sys.executable, "manage.py"]
        self.say(f"data in {self.data_dir}: SQLite database, filesystem broker, process logs")
        migrate = subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, capture_output=True, text=True,
                                 env=self.env(OTEL_SDK_DISABLED="true"))
        if migrate.returncode != 0:
            self.say("migrate failed:\n" + migrate.stdout + migrate.stderr)
            return False

        # The tail prints straight to this terminal (its stdout is ours after the first line).
        # Quiet 10 s: an order's trace is printed whole, with the relay's part (the relay
        # starts, and boots Django, only after the worker is done) even on a busy machine;
        # at the end the tail prints whatever still waits.
        tail = self.start("tracing_tail", [*manage, "tracing_tail", "--port", "0", "--no-grpc", "--quiet", "10"],
                          self.env(OTEL_SDK_DISABLED="true"), log=False)
        first = tail.popen.stdout.readline()
        found = re.search(r"OTEL_EXPORTER_OTLP_ENDPOINT=(\S+)", first)
        if not found:
            self.say(f"tracing_tail did not start: {first}{tail.popen.stdout.read()}")
            return False
        self.tail_endpoint = found.group(1)
        self.say(f"tracing_tail receives OTLP at {self.tail_endpoint}")
        self.forwarder = _forward(tail.popen.stdout)

        self.start("pricing", [*manage, "serve_pricing", "--listen", self.pricing_target], self.env("shop-pricing"))
        port = free_port()
        self.web_url = f"http://127.0.0.1:{port}"
        self.start("web", [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                           "-b", f"127.0.0.1:{port}", "-w", "2"],
                   self.env("shop-web", WEB_INTERFACE="asgi" if self.asgi else "wsgi",
                            INVENTORY_URL=self.web_url))
        self.start("worker", [sys.executable, "-m", "celery", "-A", "project", "worker", "-l", "info",
                              "-P", "prefork", "-c", "2", "--without-gossip", "--without-mingle",
                              "--without-heartbeat"], self.env("shop-worker"))
        # celery beat: the periodic inventory.reject_stale_orders, every few seconds here.
        self.start("beat", [sys.executable, "-m", "celery", "-A", "project", "beat", "-l", "info",
                            "-s", str(self.data_dir / "celerybeat-schedule")],
                   self.env("shop-beat", STALE_ORDER_CHECK_INTERVAL=str(BEAT_INTERVAL)))
        self.start("notifications", [*manage, "consume_events"], self.env("shop-notifications"))
        if not self.wait_ready():
            return False
        self.say(f"web at {self.web_url}, pricing (gRPC) at {self.pricing_target}, worker running; sending requests")
        # Stopping (main's finally) flushes web and worker, then the tail prints what is pending.
        return self.script()

    def request(self, method: str, path: str, body: dict | str | None = None) -> tuple[int, dict]:
        data = (body if isinstance(body, str) else json.dumps(body)).encode() if body is not None else None
        request = urllib.request.Request(self.web_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        self.say(f"{method} {path} {body if body is not None else ''} -> {status} {raw.decode()[:80]}")
        return status, json.loads(raw or b"{}")

    def status_stream(self, order_id: int) -> list[str]:
        """The statuses the order-status stream (server-sent events) sends; it ends at a final one."""
        path = f"/api/orders/{order_id}/events/"
        with urllib.request.urlopen(self.web_url + path, timeout=30) as response:
            statuses = [json.loads(line[5:])["status"] for line in response.read().decode().splitlines()
                        if line.startswith("data:")]
        self.say(f"GET {path} (server-sent events) -> {statuses}")
        return statuses

    def wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            for child in self.children:
                if child.popen.poll() is not None:
                    self.say(f"{child.name} exited early")
                    return False
            try:
                with urllib.request.urlopen(self.web_url + "/healthz", timeout=2):
                    pass
            except OSError:
                time.sleep(0.2)
                continue
            if self.pricing_ready():
                return True
        self.say("the web server or the pricing server did not answer in time")
        return False

    def pricing_ready(self) -> bool:
        import grpc

        with grpc.insecure_channel(self.pricing_target) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return True
            except grpc.FutureTimeoutError:
                return False

    def wait_status(self, order_id: int, timeout: float = 60.0) -> str:
        """Wait until the worker has handled the order. Reads the database file directly,
        so the polling makes no traces of its own."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with sqlite3.connect(self.data_dir / "shop.sqlite3", timeout=20) as conn:
                (status,) = conn.execute("select status from orders_order where id = ?", (order_id,)).fetchone()
            if status != "pending":
                return status
            time.sleep(0.2)
        return "pending"

    def script(self) -> bool:
        """The requests whose traces the demo shows; False if one did not behave."""
        checks = []
        status, order = self.request("POST", "/api/orders/", {"sku": "widget", "quantity": 2})
        checks.append(status == 201)
        status, too_many = self.request("POST", "/api/orders/", {"sku": "gadget", "quantity": 999})
        checks.append(status == 201)
        checks.append(self.request("POST", "/api/orders/", "not json")[0] == 400)
        checks.append(self.request("GET", "/api/orders/424242/")[0] == 404)
        if checks[0]:
            final = self.wait_status(order["id"])
            self.say(f"order {order['id']} is {final}")
            checks.append(final == "reserved")
        if checks[1]:
            final = self.wait_status(too_many["id"])
            self.say(f"order {too_many['id']} is {final}")
            checks.append(final == "rejected")
        if checks[0]:
            checks.append(self.request("GET", f"/api/orders/{order['id']}/")[0] == 200)
            checks.append(self.status_stream(order["id"]) == ["reserved"])
            # An async view asking pricing (grpc.aio) and the stock API (httpx) at once.
            checks.append(self.request("GET", f"/api/orders/{order['id']}/quote")[0] == 200)
        checks.append(self.relay_events(checks[:2].count(True)))
        checks.append(self.beat_sent())
        return all(checks)

    def beat_sent(self, timeout: float = 60.0) -> bool:
        """Wait until celery beat has sent its periodic task once (a trace named reject-stale-orders)."""
        beat = next(c for c in self.children if c.name == "beat")
        deadline = time.monotonic() + timeout
        while "Sending due task reject-stale-orders" not in beat.log.read_text(errors="replace"):
            if time.monotonic() > deadline or beat.popen.poll() is not None:
                self.say("celery beat did not send its periodic task")
                return False
            time.sleep(0.2)
        self.say("celery beat sent reject-stale-orders (a trace of its own)")
        return True

    def relay_events(self, expected: int, timeout: float = 60.0) -> bool:
        """Start the outbox relay; wait until the consumer wrote a notification per order."""
        notifications = next(c for c in self.children if c.name == "notifications")
        deadline = time.monotonic() + timeout
        while "consuming from" not in notifications.log.read_text(errors="replace"):  # its queue is bound
            if time.monotonic() > deadline or notifications.popen.poll() is not None:
                self.say("the notifications consumer did not start")
                return False
            time.sleep(0.2)
        self.start("relay", [sys.executable, "manage.py", "relay_outbox"], self.env("shop-relay"))
        while time.monotonic() < deadline:
            with sqlite3.connect(self.data_dir / "shop.sqlite3", timeout=20) as conn:
                (count,) = conn.execute("select count(*) from notifications_notification").fetchone()
            if count >= expected:
                self.say(f"relay published the order.created events; {count} notification(s) written")
                return True
            time.sleep(0.2)
        self.say("the order.created events did not reach the notifications consumer")
        return False

    def stop(self) -> None:
        # Web and worker first (their shutdown flushes spans to the tail), the tail last
        # (it prints what is still pending when it stops).
        for child in reversed(self.children):
            child.stop()
        if self.forwarder is not None:
            self.forwarder.join(10)

    def logs(self) -> str:
        return "\n".join(f"===== {c.name} ({c.log}) =====\n{c.log.read_text(errors='replace')[-4000:]}"
                         for c in self.children if c.log and c.log.exists())


def _forward(stream: IO[str]) -> threading.Thread:
    """Copy the tail's output to ours as it comes, from a thread."""

    def copy() -> None:
        for line in stream:
            sys.stdout.write(line)
            sys.stdout.flush()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the demo as Ctrl-C does: through main()'s ``finally``, which stops every process."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".demo", help="Emptied, then used (default .demo/).")
    parser.add_argument("--asgi", action="store_true",
                        help="Serve the web under ASGI (gunicorn with the uvicorn worker) instead of WSGI.")
    args = parser.parse_args(argv)
    demo = Demo(args.data_dir.resolve(), asgi=args.asgi)
    signal.signal(signal.SIGTERM, _interrupt)
    ok = False
    try:
        ok = demo.run()
    except KeyboardInterrupt:
        demo.say("interrupted")
    finally:
        demo.stop()
    if not ok:
        demo.say("something went wrong; the processes' logs:\n" + demo.logs())
        return 1
    demo.say(f"done; every process stopped. Logs: {demo.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
