"""Task overhead: ``python -m bench.task_overhead [--rounds N --tasks T]``.

Tasks/s through a real Celery worker (prefork, one child, the demo's settings:
late acks, prefetch 1) running the demo's ``inventory.reserve_stock`` against
real PostgreSQL and RabbitMQ, in three modes, one worker each on its own queue:
untraced (``tracing_app`` not installed), traced by tracing_app (every task
sampled and exported over OTLP/HTTP to ``bench.sink``), and plain OpenTelemetry
(``bench.otel_celery``: the upstream Celery + psycopg instrumentations with the
SDK's batch processor).

Each round inserts ``--tasks`` pending orders, publishes one task per order with
a sampled ``traceparent`` (as a traced web process would send it), and times
until the worker has processed them all. Modes are interleaved, rotating order.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg
from celery import Celery

from tests.e2e.stack import BROKER_URL, Database, run_id

from .harness import BENCHMARKS_MD, READY_TIMEOUT, BenchStack, Sink, cpu_seconds, environment, table, write_section

SECTION = "task_overhead"
TASK = "inventory.reserve_stock"


@dataclasses.dataclass
class Mode:
    name: str
    service: str
    settings: str
    app: str = "project"
    queue: str = ""
    tasks: int = 0
    elapsed: float = 0.0
    round_rates: list[float] = dataclasses.field(default_factory=list)
    spans: int = 0
    cpu: float = 0.0  # CPU seconds of the worker's processes (main + pool child) in measured rounds
    pid: int = 0
    sent: int = 0  # warm-up included: spans are counted over every task run

    @property
    def rate(self) -> float:
        return self.tasks / self.elapsed if self.elapsed else float("nan")


def modes() -> list[Mode]:
    return [
        Mode("untraced", "bench-task-untraced", "bench.settings_untraced"),
        Mode("tracing_app, sampled 100%", "bench-task-traced", "project.settings"),
        Mode("plain OpenTelemetry", "bench-task-plain-otel", "bench.settings_untraced", app="bench.otel_celery"),
    ]


def insert_orders(database: Database, count: int) -> tuple[int, int]:
    with psycopg.connect(database.url, autocommit=True) as conn:
        ids = [row[0] for row in conn.execute(
            "insert into orders_order (sku, quantity, status, created_at) "
            "select 'widget', 1, 'pending', now() from generate_series(1, %s) returning id", (count,))]
    return min(ids), max(ids)


def run_batch(database: Database, publisher: Celery, queue: str, count: int, timeout: float = 300) -> float:
    """Publish ``count`` tasks to ``queue``; return the seconds until all are processed."""
    first, last = insert_orders(database, count)
    with psycopg.connect(database.url, autocommit=True) as conn:
        started = time.perf_counter()
        with publisher.producer_or_acquire() as producer:
            for order_id in range(first, last + 1):
                traceparent = f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
                publisher.send_task(TASK, args=[order_id], queue=queue, producer=producer,
                                    headers={"traceparent": traceparent})
        while True:
            pending = conn.execute("select count(*) from orders_order where id between %s and %s "
                                   "and status = 'pending'", (first, last)).fetchone()[0]
            if pending == 0:
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{pending} of {count} tasks on {queue} not processed in {timeout}s")
            time.sleep(0.02)


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and its descendants (the Celery main process and its pool child)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += cpu_seconds(current)
            pending += [int(child) for child in
                        Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except FileNotFoundError:  # exited between the two reads
            continue
    return total


def measure(rounds: int, tasks: int) -> list[Mode]:
    all_modes = modes()
    for index, mode in enumerate(all_modes):
        mode.queue = f"bench-{run_id()}-{index}"
    sink = Sink()
    publisher = Celery(broker=BROKER_URL)
    try:
        with BenchStack(sink.endpoint, queues=[mode.queue for mode in all_modes]) as stack:
            with psycopg.connect(stack.database.url, autocommit=True) as conn:
                conn.execute("update inventory_stock set quantity = 1000000000 where sku = 'widget'")
            for mode in all_modes:
                env = stack.measured_env(mode.service, DJANGO_SETTINGS_MODULE=mode.settings,
                                         CELERY_TASK_DEFAULT_QUEUE=mode.queue)
                mode.pid = stack.start(mode.service, [
                    sys.executable, "-m", "celery", "-A", mode.app, "worker", "-Q", mode.queue, "-l", "warning",
                    "-P", "prefork", "-c", "1", "--without-gossip", "--without-mingle", "--without-heartbeat",
                ], env).popen.pid
            for mode in all_modes:  # warm-up: the worker is up, connected and has run the task
                with stack.logs_on_timeout():
                    run_batch(stack.database, publisher, mode.queue, max(5, tasks // 10), timeout=READY_TIMEOUT)
                mode.sent += max(5, tasks // 10)
            for index in range(rounds):
                for mode in all_modes[index % len(all_modes):] + all_modes[:index % len(all_modes)]:
                    cpu_before = tree_cpu_seconds(mode.pid)
                    seconds = run_batch(stack.database, publisher, mode.queue, tasks)
                    mode.cpu += tree_cpu_seconds(mode.pid) - cpu_before
                    mode.tasks += tasks
                    mode.sent += tasks
                    mode.elapsed += seconds
                    mode.round_rates.append(tasks / seconds)
            stack.stop()  # warm shutdown: tracing_app flushes in worker_process_shutdown
            counts = sink.counts()
            for mode in all_modes:
                mode.spans = counts.get(mode.service, 0)
            return all_modes
    finally:
        sink.stop()


def report(all_modes: list[Mode], rounds: int, tasks: int) -> str:
    base = all_modes[0]
    base_time, base_cpu = 1 / base.rate, base.cpu / base.tasks
    rows = []
    for mode in all_modes:
        # The median over rounds ignores a round that another process on this machine disturbed.
        per_round = [b / m for b, m in zip(base.round_rates, mode.round_rates, strict=True)]
        ratio = statistics.median(per_round)
        cpu = mode.cpu / mode.tasks
        rows.append([
            mode.name, f"{mode.rate:.0f}", f"{ratio:.3f} ({min(per_round):.3f}–{max(per_round):.3f})",
            f"{(ratio - 1) * base_time * 1e6:+.0f}", f"{cpu * 1e6:.0f} ({(cpu - base_cpu) * 1e6:+.0f})",
            f"{mode.spans / mode.sent:.2f}",
        ])
    return "\n\n".join([
        "## Task overhead (`python -m bench.task_overhead`)",
        environment(),
        f"{rounds} interleaved rounds x {tasks} `inventory.reserve_stock` tasks per mode; celery prefork -c 1, "
        "acks late, prefetch 1; a round's time runs from the first publish until the last order left `pending`. "
        "Time per task vs untraced is the median of the rounds' ratios; worker CPU is the Celery main process "
        "and its pool child, user + system, per task.",
        table(["mode", "tasks/s", "time/task vs untraced: median (range)", "added µs/task",
               "worker CPU µs/task (added)", "spans/task exported"], rows),
    ])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--tasks", type=int, default=150, help="tasks per mode per round")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD, help="the Markdown file to update")
    args = parser.parse_args(argv)
    text = report(measure(args.rounds, args.tasks), args.rounds, args.tasks)
    print(text)
    if not args.no_write:
        write_section(SECTION, text, args.output)
    return text


if __name__ == "__main__":
    main()
