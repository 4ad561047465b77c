"""Soak: ``python -m bench.soak [--seconds 180]``: long statements, a flapping collector,
and every span accounted for.

Two gunicorn servers (two sync workers each) of the demo on real PostgreSQL: one
traced (every request sampled, exporting with the defaults a user gets), one
untraced (``bench.soak_settings_untraced``). Two client threads send the same mix
to both, interleaved request by request: ``POST /api/orders/`` (gRPC pricing, an
insert, a Celery publish to RabbitMQ), ``GET /api/orders/<id>/``, and long
statements: ``filter(id__in=...)`` over 100 to 30,000 ids and ``bulk_create`` of
up to 3,000 rows (``bench.soak_urls``).

The OTLP receiver (``tracing_app.devtools.receiver``, in this process) answers 413
to bodies over 64 KiB throughout (a proxy's body limit, far under nginx's 1 MiB
default so that this mix's piled-up batches go over it; tracing_app's default request is
3 MiB, so those requests are split) and flaps on a schedule that repeats
over the run: healthy, down (the port refuses), healthy, slow (2 s per answer),
healthy, 503, healthy, 413 for every request.

After a warm-up (``--warmup``, healthy receiver) each worker's RSS is read; at the
end both servers get SIGTERM; each worker flushes and writes its
``tracing_app.export_stats()`` and its peak RSS (``bench.soak_gunicorn``). Printed:
the accounting identity per traced process, ``ended == exported + dropped``, which
must hold exactly; peak RSS traced vs untraced per worker (target: at most +25 MB), and
each worker's growth after the warm-up (the part the long run adds);
failed requests per server (target: the same as untraced).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from tests.e2e.stack import WebServer, free_port
from tracing_app.devtools.receiver import Fault, OTLPReceiver

from .harness import BENCHMARKS_MD, BenchStack, environment, table, verdict, write_section
from .loadgen import ORDER, call

SECTION = "soak"
# Far under nginx's 1 MiB default on purpose: with statements shortened (collapsed IN and
# VALUES lists, QUERY_TEXT_MAX_LENGTH) this mix's spans are small, and only batches that
# piled up while the collector was down or slow go over it and are split on 413.
BODY_LIMIT = 64 * 1024 + 1
RSS_TARGET_MB = 25.0
PHASES = ("healthy", "down", "healthy", "slow", "healthy", "503", "healthy", "413")
FAULTS = {"slow": Fault(delay=2.0), "503": Fault(status=503), "413": Fault(status=413)}
STATEMENT_IDS = (100, 1_000, 5_000, 12_000, 30_000)


class FlappingReceiver:
    """An OTLP/HTTP receiver on a fixed port that can go down (refuse) and come back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: collections.Counter[str] = collections.Counter()
        self.over_limit = 0  # requests answered 413 for their size, by every receiver so far
        self.largest = 0  # the largest request body received, in bytes
        self._lock = threading.Lock()
        self.receiver: OTLPReceiver | None = None
        self.up()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _count(self, records: list) -> None:
        with self._lock:
            for record in records:
                self.received[record.service] += 1

    def up(self, fault: Fault | None = None) -> None:
        if self.receiver is None:
            self.receiver = OTLPReceiver(port=self.port, on_spans=self._count, keep=False,
                                         max_body_bytes=BODY_LIMIT).start()
        self.receiver.fault = fault or Fault()

    def down(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
            self.over_limit += self.receiver.too_large
            self.largest = max([self.largest, *self.receiver.body_sizes])
            self.receiver = None

    def set_phase(self, phase: str) -> None:
        if phase == "down":
            self.down()
        else:
            self.up(FAULTS.get(phase))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.received)


class Client(threading.Thread):
    """Sends the mix to every server in turn until ``stop`` is set; counts requests and failures."""

    def __init__(self, urls: dict[str, str], stop: threading.Event, seed: int) -> None:
        super().__init__(daemon=True)
        self.targets = {name: urllib.parse.urlsplit(url) for name, url in urls.items()}
        self.stop = stop
        self.random = random.Random(seed)
        self.sent: collections.Counter[str] = collections.Counter()
        self.failed: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []

    def request(self, name: str, method: str, path: str, expected: int, body: bytes | None = None) -> bytes:
        target = self.targets[name]
        self.sent[name] += 1
        try:
            status, answer = call(target.hostname, target.port, method, path, body)
        except OSError as error:
            status, answer = 0, str(error).encode()
        if status != expected:
            self.failed[name] += 1
            if len(self.failures) < 20:
                self.failures.append(f"{name}: {method} {path} -> {status} {answer[:200]!r}")
            return b""
        return answer

    def run(self) -> None:
        names = list(self.targets)
        while not self.stop.is_set():
            ids = self.random.choice(STATEMENT_IDS)
            bulk = self.random.random() < 0.3
            self.random.shuffle(names)  # the same mix to every server, in a different order each cycle
            for name in names:
                answer = self.request(name, "POST", "/api/orders/", 201, ORDER)
                if answer:
                    self.request(name, "GET", f"/api/orders/{json.loads(answer)['id']}/", 200)
                self.request(name, "GET", f"/soak/long/?n={ids}{'&bulk=1' if bulk else ''}", 200)


def start_web(stack: BenchStack, service: str, settings: str, stats_dir: Path) -> WebServer:
    return stack.start_gunicorn(service, "project.wsgi", "-c", "python:bench.soak_gunicorn",
                                DJANGO_SETTINGS_MODULE=settings, SOAK_STATS_DIR=str(stats_dir))


def worker_pids(master_pid: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run(seconds: float, warmup: float) -> dict:
    receiver = FlappingReceiver()
    stats_dirs = {name: Path(tempfile.mkdtemp(prefix=f"soak-{name}-")) for name in ("traced", "untraced")}
    stop = threading.Event()
    clients: list[Client] = []
    schedule: list[tuple[float, str]] = []
    try:
        with BenchStack(receiver.endpoint, name="soak") as stack:
            webs = {
                "traced": start_web(stack, "soak-traced", "bench.soak_settings", stats_dirs["traced"]),
                "untraced": start_web(stack, "soak-untraced", "bench.soak_settings_untraced", stats_dirs["untraced"]),
            }
            stack.wait_ready(*webs.values())
            clients = [Client({name: web.url for name, web in webs.items()}, stop, seed) for seed in range(2)]
            for client in clients:
                client.start()
            # Warm-up with a healthy receiver: imports, connections, the first of each statement.
            stop.wait(warmup)
            warm_rss = {pid: rss_kib(pid) for web in webs.values() for pid in worker_pids(web.process.popen.pid)}
            started = time.monotonic()
            phase_seconds = seconds / len(PHASES)
            for index, phase in enumerate(PHASES):
                receiver.set_phase(phase)
                schedule.append((time.monotonic() - started, phase))
                stop.wait(max(0.0, started + (index + 1) * phase_seconds - time.monotonic()))
            receiver.set_phase("healthy")
            stop.set()
            largest_so_far = max([receiver.largest, *receiver.receiver.body_sizes])
            for client in clients:
                client.join(120)
            elapsed = time.monotonic() - started
            # SIGTERM: each worker flushes (bounded by SHUTDOWN_TIMEOUT) and writes its stats.
            stack.stop()
            records = {name: [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
                       for name, directory in stats_dirs.items()}
            if len(records["traced"]) != 2 or len(records["untraced"]) != 2:
                raise RuntimeError(f"expected 2 workers' stats per server, got {records}\n{stack.logs()}")
            return {
                "seconds": elapsed, "warmup": warmup, "schedule": schedule, "records": records,
                "received": receiver.counts(), "warm_rss": warm_rss,
                "over_limit": receiver.over_limit + (receiver.receiver.too_large if receiver.receiver else 0),
                "largest": max(largest_so_far, *(receiver.receiver.body_sizes if receiver.receiver else [0])),
                "sent": sum((client.sent for client in clients), collections.Counter()),
                "failed": sum((client.failed for client in clients), collections.Counter()),
                "failures": [line for client in clients for line in client.failures],
            }
    finally:
        stop.set()
        receiver.down()


def identity(stats: dict) -> tuple[bool, str]:
    dropped = sum(stats["dropped"].values())
    holds = stats["ended"] == stats["exported"] + dropped + stats["pending"] and stats["pending"] == 0
    reasons = ", ".join(f"{reason} {count}" for reason, count in stats["dropped"].items() if count) or "none"
    text = f"{stats['ended']} = {stats['exported']} + {dropped} ({reasons}) + {stats['pending']}"
    return holds, text


def report(result: dict) -> tuple[str, bool]:
    rows, all_hold = [], True
    for record in result["records"]["traced"]:
        holds, text = identity(record["stats"])
        all_hold &= holds
        rows.append([str(record["pid"]), text, "holds" if holds else "**does not hold**",
                     str(record["stats"]["failed_attempts"])])
    exported = sum(record["stats"]["exported"] for record in result["records"]["traced"])
    received = result["received"].get("soak-traced", 0)
    peaks = {name: max(record["peak_rss_kib"] / 1024 for record in records)
             for name, records in result["records"].items()}
    rss_rows, growth = [], {}
    for name, records in result["records"].items():
        for record in sorted(records, key=lambda record: record["pid"]):
            warm, peak = result["warm_rss"].get(record["pid"], 0) / 1024, record["peak_rss_kib"] / 1024
            rss_rows.append([name, str(record["pid"]), f"{warm:.1f}", f"{peak:.1f}", f"{peak - warm:+.1f}"])
            growth[name] = max(growth.get(name, 0.0), peak - warm)
    added = peaks["traced"] - peaks["untraced"]
    sent, failed = result["sent"], result["failed"]
    schedule = ", ".join(f"{phase} at {at:.0f}s" for at, phase in result["schedule"])
    targets = [
        ["ended = exported + dropped, per traced process, exactly", "all hold" if all_hold else "broken",
         verdict(all_hold)],
        [f"peak RSS traced ≤ untraced + {RSS_TARGET_MB:g} MB (largest worker of each)",
         f"{peaks['traced']:.1f} vs {peaks['untraced']:.1f} MB = {added:+.1f} MB",
         verdict(added <= RSS_TARGET_MB)],
        ["failed requests: traced = untraced", f"{failed['traced']} vs {failed['untraced']}",
         verdict(failed["traced"] <= failed["untraced"])],
    ]
    text = "\n\n".join([
        "## Soak: long statements, a flapping collector (`python -m bench.soak`)",
        environment(),
        f"{result['seconds']:.0f} s; requests sent: traced {sent['traced']}, untraced {sent['untraced']} "
        f"(two client threads, same mix to both servers, interleaved). Receiver: 413 over {BODY_LIMIT // 1024} KiB "
        f"throughout ({result['over_limit']} requests were over it and split; the largest request was "
        f"{result['largest'] / 1024:.0f} KiB); schedule: {schedule}.",
        "Span accounting of each traced gunicorn worker after its exit flush "
        "(`ended = exported + dropped (by reason) + pending`):",
        table(["pid", "ended = exported + dropped + pending", "identity", "failed export attempts"], rows),
        f"Spans the receiver decoded from the traced server: {received}; exported by its workers' count: "
        f"{exported} (the receiver may have more: a request it answered after the client's timeout, or "
        f"while stopping, is counted as dropped by the sender).",
        f"RSS per worker, MB: after {result['warmup']:g} s of warm-up (VmRSS) and its peak over the whole run "
        f"(VmHWM, read by the worker at exit). Growth after warm-up, largest worker: traced "
        f"{growth['traced']:+.1f}, untraced {growth['untraced']:+.1f}.",
        table(["server", "worker pid", "after warm-up", "peak", "growth"], rss_rows),
        table(["target", "measured", ""], targets),
    ] + ([f"First failures: {result['failures'][:5]}"] if result["failures"] else []))
    return text, all_hold


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="length of the run (default 3 minutes)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the schedule starts")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD, help="the Markdown file to update")
    args = parser.parse_args(argv)
    text, all_hold = report(run(args.seconds, args.warmup))
    print(text)
    if not args.no_write:
        write_section(SECTION, text, args.output)
    if not all_hold:
        raise SystemExit("the span accounting identity does not hold")
    return text


if __name__ == "__main__":
    main()
