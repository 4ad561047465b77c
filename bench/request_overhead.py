"""Request overhead: ``python -m bench.request_overhead [--rounds N --seconds S]``.

The demo's ``POST /api/orders/`` (an ORM insert and a Celery publish to RabbitMQ)
and ``GET /api/orders/<id>/`` against gunicorn with one sync worker and real
PostgreSQL, in five modes served side by side, one gunicorn each:

- untraced: ``tracing_app`` not installed (``bench.settings_untraced``);
- disabled: installed, ``OTEL_SDK_DISABLED=true``;
- sampled 0%: installed, exporting, ratio sampler at 0;
- sampled 100%: installed, every request traced and exported over OTLP/HTTP;
- plain OpenTelemetry: the upstream Django + Celery + psycopg instrumentations
  with the SDK's batch processor and OTLP/HTTP exporter (``bench.otel_wsgi``).

Spans go to ``bench.sink`` in its own process. The load generator
(``bench.loadgen``) is its own process too. Modes are interleaved: every round
runs each mode for ``--seconds``, rotating the order, so drift in the machine's
load spreads over all modes instead of landing on one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys

from tests.e2e.stack import ROOT, Database, Stack, WebServer, delete_queues, free_port, run_id

from .harness import Sink, environment, percentile, table, verdict, write_section

SECTION = "request_overhead"


@dataclasses.dataclass
class Mode:
    name: str
    service: str
    settings: str = "project.settings"
    app: str = "project.wsgi"
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    post: list[float] = dataclasses.field(default_factory=list)
    get: list[float] = dataclasses.field(default_factory=list)
    elapsed: float = 0.0
    round_rates: list[float] = dataclasses.field(default_factory=list)
    requests_sent: int = 0
    errors: int = 0
    spans: int = 0
    web: WebServer | None = None

    @property
    def requests(self) -> int:
        return len(self.post) + len(self.get)

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else float("nan")


def modes() -> list[Mode]:
    ratio = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
    return [
        Mode("untraced", "bench-untraced", settings="bench.settings_untraced"),
        Mode("disabled", "bench-disabled", env={"OTEL_SDK_DISABLED": "true"}),
        Mode("sampled 0%", "bench-sampled-0", env={**ratio, "OTEL_TRACES_SAMPLER_ARG": "0"}),
        Mode("sampled 100%", "bench-sampled-100", env={**ratio, "OTEL_TRACES_SAMPLER_ARG": "1"}),
        Mode("plain OpenTelemetry", "bench-plain-otel", settings="bench.settings_untraced", app="bench.otel_wsgi"),
    ]


class LoadGenerator:
    def __init__(self) -> None:
        self.popen = subprocess.Popen([sys.executable, "-m", "bench.loadgen"], cwd=ROOT, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self, url: str, seconds: float) -> dict:
        self.popen.stdin.write(json.dumps({"url": url, "seconds": seconds}) + "\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        return json.loads(line)

    def stop(self) -> None:
        self.popen.stdin.close()
        self.popen.wait(10)


def start_web(stack: Stack, mode: Mode) -> None:
    env = stack.env(mode.service, DJANGO_SETTINGS_MODULE=mode.settings, **mode.env)
    env.pop("OTEL_BSP_SCHEDULE_DELAY")  # the benchmark measures the defaults a user gets
    port = free_port()
    process = stack.start(mode.service, [sys.executable, "-m", "gunicorn", mode.app,
                                         "-b", f"127.0.0.1:{port}", "-w", "1"], env)
    mode.web = WebServer(f"http://127.0.0.1:{port}", process)


def measure(rounds: int, seconds: float, warmup: float) -> list[Mode]:
    all_modes = modes()
    database = Database(f"bench_{run_id()}").create()
    queue = f"bench-{run_id()}"
    sink = Sink()
    stack = Stack(database, queue, sink.endpoint)
    load = None
    try:
        migrate = stack.manage("migrate", "--noinput", OTEL_SDK_DISABLED="true")
        if migrate.returncode != 0:
            raise RuntimeError(migrate.stdout + migrate.stderr)
        for mode in all_modes:  # start them all, then wait: they boot in parallel
            start_web(stack, mode)
        for mode in all_modes:
            mode.web.wait_ready(timeout=60)
        load = LoadGenerator()
        for mode in all_modes:
            result = load.run(mode.web.url, warmup)
            mode.requests_sent += len(result["post"]) + len(result["get"])
        for index in range(rounds):
            for mode in all_modes[index % len(all_modes):] + all_modes[:index % len(all_modes)]:
                result = load.run(mode.web.url, seconds)
                mode.post += result["post"]
                mode.get += result["get"]
                mode.elapsed += result["elapsed"]
                mode.errors += result["errors"]
                count = len(result["post"]) + len(result["get"])
                mode.requests_sent += count
                mode.round_rates.append(count / result["elapsed"])
        load.stop()
        load = None
        # SIGTERM: gunicorn's worker exits normally and each tracer provider flushes.
        stack.stop()
        counts = sink.counts()
        for mode in all_modes:
            mode.spans = counts.get(mode.service, 0)
            if mode.errors:
                raise RuntimeError(f"{mode.name}: {mode.errors} requests failed\n{stack.logs()}")
        return all_modes
    finally:
        if load is not None:
            load.popen.kill()
        stack.stop()
        sink.stop()
        database.drop()
        delete_queues(queue)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def report(all_modes: list[Mode], rounds: int, seconds: float) -> str:
    base = all_modes[0]
    base_time = 1 / base.rate
    stats = {}
    rows = []
    for mode in all_modes:
        time_ratio = base.rate / mode.rate
        per_round = [b / m for b, m in zip(base.round_rates, mode.round_rates, strict=True)]
        row = {
            "time": time_ratio,
            "added_us": (1 / mode.rate - base_time) * 1e6,
            "post_p50": percentile(mode.post, 50) / percentile(base.post, 50),
            "post_p99": percentile(mode.post, 99) / percentile(base.post, 99),
            "get_p50": percentile(mode.get, 50) / percentile(base.get, 50),
            "get_p99": percentile(mode.get, 99) / percentile(base.get, 99),
        }
        stats[mode.name] = row
        rows.append([
            mode.name, f"{mode.rate:.0f}", f"{time_ratio:.3f}",
            f"{min(per_round):.3f}–{max(per_round):.3f}", f"{row['added_us']:+.0f}",
            f"{ms(percentile(mode.post, 50))} ({row['post_p50']:.3f})",
            f"{ms(percentile(mode.post, 99))} ({row['post_p99']:.3f})",
            f"{ms(percentile(mode.get, 50))} ({row['get_p50']:.3f})",
            f"{ms(percentile(mode.get, 99))} ({row['get_p99']:.3f})",
            f"{mode.spans / mode.requests_sent:.2f}",
        ])
    ours, plain = stats["sampled 100%"], stats["plain OpenTelemetry"]
    half = ours["added_us"] / plain["added_us"] if plain["added_us"] > 0 else float("nan")
    targets = [
        ["100% sampled + export adds ≤ ½ of plain OpenTelemetry's time per request",
         f"{ours['added_us']:.0f} µs vs {plain['added_us']:.0f} µs = {half:.2f}x", verdict(half <= 0.5)],
        ["sampled 0% ≤ 1.03x untraced", f"{stats['sampled 0%']['time']:.3f}x",
         verdict(stats["sampled 0%"]["time"] <= 1.03)],
        ["disabled ≤ 1.01x untraced", f"{stats['disabled']['time']:.3f}x", verdict(stats["disabled"]["time"] <= 1.01)],
    ]
    for name in ("sampled 0%", "sampled 100%"):
        for endpoint in ("post", "get"):
            p50, p99 = stats[name][f"{endpoint}_p50"], stats[name][f"{endpoint}_p99"]
            targets.append([f"{name}, {endpoint.upper()}: p99 ratio ≤ p50 ratio + 0.05",
                            f"{p99:.3f} vs {p50:.3f}", verdict(p99 <= p50 + 0.05)])
    header = ["mode", "req/s", "time/req vs untraced", "per-round range", "added µs/req",
              "POST p50 ms (ratio)", "POST p99 ms (ratio)", "GET p50 ms (ratio)", "GET p99 ms (ratio)",
              "spans/req"]
    return "\n\n".join([
        "## Request overhead (`python -m bench.request_overhead`)",
        environment(),
        f"{rounds} interleaved rounds x {seconds:g} s per mode, {base.requests + sum(m.requests for m in all_modes[1:])}"
        " measured requests; one closed-loop client alternating POST /api/orders/ and GET /api/orders/<id>/; "
        "gunicorn -w 1 (sync). Ratios are to untraced in the same run; the per-round range shows the noise.",
        table(header, rows),
        table(["target", "measured", ""], targets),
    ])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0, help="per mode per round")
    parser.add_argument("--warmup", type=float, default=2.0, help="per mode, before the first round")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    text = report(measure(args.rounds, args.seconds, args.warmup), args.rounds, args.seconds)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return text


if __name__ == "__main__":
    main()
