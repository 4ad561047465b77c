"""ASGI request overhead: ``python -m bench.asgi_overhead [--rounds N --seconds S --connections C]``.

The demo served as ASGI (``project.asgi``) by gunicorn with one uvicorn worker per mode,
real PostgreSQL and RabbitMQ, the pricing gRPC service running (one untraced server for
every mode), in three modes served side by side:

- untraced: no tracing middleware, ``tracing_app`` disabled (``bench.settings_untraced``);
- tracing_app: every request traced (sampled 100%) and exported over OTLP/HTTP;
- plain OpenTelemetry: the upstream Django (its ASGI path uses the ASGI instrumentation),
  psycopg, Celery and gRPC client instrumentations with the SDK's batch processor and
  OTLP/HTTP exporter (``bench.otel_asgi``).

Each traced mode exports to its own ``bench.sink --discard``, which counts bytes without
decoding them: on two shared cores a receiver that decodes every span takes CPU from
every mode alike and hides the differences. Two measurements, in the same run:

- saturation: ``--connections`` clients send ``POST /api/orders/`` back to back to one
  mode for ``--seconds``; the modes take turns, in a rotated order each round. The cost
  of a mode is untraced's throughput over its throughput, the median over rounds;
- closed loop: one client sends POST then GET to each mode in turn, request by request
  (``bench.loadgen``), for latency percentiles.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
from pathlib import Path

from tests.e2e.stack import ROOT, WebServer

from .harness import (
    BENCHMARKS_MD,
    BenchStack,
    Sink,
    cpu_seconds,
    environment,
    percentile,
    table,
    verdict,
    write_section,
)
from .request_overhead import quartiles, worker_pid

SECTION = "asgi_overhead"
ASGI_WORKER = "uvicorn_worker.UvicornWorker"


@dataclasses.dataclass
class Mode:
    name: str
    service: str
    settings: str = "project.settings"
    app: str = "project.asgi:application"
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    traced: bool = True
    rates: list[float] = dataclasses.field(default_factory=list)  # POST/s at saturation, per round
    saturated: int = 0  # requests answered at saturation
    cpu: float = 0.0  # worker CPU seconds (all threads) during the saturation rounds
    post: list[float] = dataclasses.field(default_factory=list)
    get: list[float] = dataclasses.field(default_factory=list)
    errors: int = 0
    sink: Sink | None = None
    exported: dict[str, int] = dataclasses.field(default_factory=dict)
    web: WebServer | None = None
    worker_pid: int = 0


def modes() -> list[Mode]:
    ratio = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}
    return [
        Mode("untraced", "bench-asgi-untraced", settings="bench.settings_untraced", traced=False),
        Mode("tracing_app", "bench-asgi-tracing-app", env=ratio),
        Mode("plain OpenTelemetry", "bench-asgi-plain-otel", settings="bench.settings_untraced",
             app="bench.otel_asgi:application"),
    ]


class LoadGenerator:
    """``bench.loadgen`` in its own process: its CPU is not charged to the servers."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen([sys.executable, "-m", "bench.loadgen"], cwd=ROOT, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, command: dict) -> dict:
        self.popen.stdin.write(json.dumps(command) + "\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        return json.loads(line)

    def stop(self) -> None:
        self.popen.stdin.close()
        self.popen.wait(30)


def start_web(stack: BenchStack, mode: Mode) -> None:
    extra = {"DJANGO_SETTINGS_MODULE": mode.settings, **mode.env}
    if mode.traced:
        mode.sink = Sink(discard=True)
        extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = mode.sink.endpoint
    # -k on the command line wins over bench.gunicorn_conf's sync worker.
    mode.web = stack.start_gunicorn(mode.service, mode.app, "-c", "python:bench.gunicorn_conf", "-k", ASGI_WORKER,
                                    **extra)


def measure(rounds: int, seconds: float, connections: int, latency_seconds: float, warmup: float) -> list[Mode]:
    all_modes = modes()
    load = None
    try:
        with BenchStack("http://127.0.0.1:9") as stack:  # each traced mode has its own sink
            for mode in all_modes:  # start them all, then wait: they boot in parallel
                start_web(stack, mode)
            stack.wait_ready(*(mode.web for mode in all_modes))
            for mode in all_modes:
                mode.worker_pid = worker_pid(mode.web.process.popen.pid)
            load = LoadGenerator()
            urls = [mode.web.url for mode in all_modes]
            for mode in all_modes:
                load.ask({"saturate": mode.web.url, "connections": connections, "seconds": warmup})
            for index in range(rounds):
                # Rotate who goes first: a burst of load from elsewhere lands on each mode in turn.
                for mode in all_modes[index % len(all_modes):] + all_modes[:index % len(all_modes)]:
                    before = cpu_seconds(mode.worker_pid)
                    result = load.ask({"saturate": mode.web.url, "connections": connections, "seconds": seconds})
                    mode.cpu += cpu_seconds(mode.worker_pid) - before
                    mode.saturated += result["done"]
                    mode.errors += result["errors"]
                    mode.rates.append(result["done"] / result["seconds"])
                closed = load.ask({"urls": urls, "seconds": latency_seconds})
                for position, mode in enumerate(all_modes):
                    mode.post += closed["post"][position]
                    mode.get += closed["get"][position]
                    mode.errors += closed["errors"][position]
            load.stop()
            load = None
            stack.stop()  # SIGTERM: each worker exits normally and flushes its spans
            for mode in all_modes:
                if mode.sink is not None:
                    mode.exported = mode.sink.counts()
                if mode.errors:
                    raise RuntimeError(f"{mode.name}: {mode.errors} requests failed\n{stack.logs()}")
            return all_modes
    finally:
        if load is not None:
            load.popen.kill()
        for mode in all_modes:
            if mode.sink is not None:
                mode.sink.stop()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def report(all_modes: list[Mode], rounds: int, seconds: float, connections: int, latency_seconds: float) -> str:
    base = all_modes[0]
    stats: dict[str, dict[str, float]] = {}
    rows = []
    for mode in all_modes:
        low, cost, high = quartiles([b / m for b, m in zip(base.rates, mode.rates, strict=True)])
        cpu = mode.cpu / max(1, mode.saturated)
        stats[mode.name] = {
            "cost": cost,
            "post_p50": percentile(mode.post, 50) / percentile(base.post, 50),
            "get_p50": percentile(mode.get, 50) / percentile(base.get, 50),
        }
        requests = mode.saturated + len(mode.post) + len(mode.get)
        exported = f"{mode.exported.get('bytes', 0) / max(1, requests) / 1024:.2f}" if mode.traced else "–"
        rows.append([
            mode.name, f"{statistics.median(mode.rates):.1f}", f"{cost:.3f} ({low:.3f}–{high:.3f})",
            f"{cpu * 1e6:.0f}",
            f"{ms(percentile(mode.post, 50))} ({stats[mode.name]['post_p50']:.3f})",
            f"{ms(percentile(mode.post, 99))}",
            f"{ms(percentile(mode.get, 50))} ({stats[mode.name]['get_p50']:.3f})",
            f"{ms(percentile(mode.get, 99))}", exported,
        ])
    ours, plain = stats["tracing_app"], stats["plain OpenTelemetry"]

    def share(key: str) -> float:
        added = plain[key] - 1
        return (ours[key] - 1) / added if added > 0 else float("nan")

    targets = [
        ["at saturation, tracing_app adds ≤ ⅓ of what plain OpenTelemetry adds",
         f"{ours['cost'] - 1:+.3f} vs {plain['cost'] - 1:+.3f} = {share('cost'):.2f}", verdict(share("cost") <= 1 / 3)],
        ["closed loop, POST p50: the same",
         f"{ours['post_p50'] - 1:+.3f} vs {plain['post_p50'] - 1:+.3f} = {share('post_p50'):.2f}",
         verdict(share("post_p50") <= 1 / 3)],
        ["closed loop, GET p50: the same",
         f"{ours['get_p50'] - 1:+.3f} vs {plain['get_p50'] - 1:+.3f} = {share('get_p50'):.2f}",
         verdict(share("get_p50") <= 1 / 3)],
    ]
    header = ["mode", "POST/s at saturation (median)", "cost vs untraced: median (quartiles)",
              "worker CPU µs/POST at saturation", "closed-loop POST p50 ms (ratio)", "POST p99 ms",
              "GET p50 ms (ratio)", "GET p99 ms", "exported KiB/req"]
    return "\n\n".join([
        "## ASGI request overhead (`python -m bench.asgi_overhead`)",
        environment(),
        f"{rounds} rounds; each round: {seconds:g} s per mode at saturation ({connections} connections sending "
        f"POST /api/orders/ back to back, modes in turn, rotated order), then {latency_seconds:g} s closed loop "
        "(one client, POST then GET to each mode in turn). gunicorn with one uvicorn worker per mode "
        "(project.asgi), pricing running, each traced mode exporting to its own sink that does not decode. "
        "Cost = untraced's throughput / the mode's, median over rounds (1.000 = free).",
        table(header, rows),
        table(["target", "measured", ""], targets),
    ])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0, help="per mode per round, at saturation")
    parser.add_argument("--connections", type=int, default=6)
    parser.add_argument("--latency-seconds", type=float, default=6.0, help="closed loop, per round (all modes)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds per mode before the first round")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD, help="the Markdown file to update")
    args = parser.parse_args(argv)
    all_modes = measure(args.rounds, args.seconds, args.connections, args.latency_seconds, args.warmup)
    text = report(all_modes, args.rounds, args.seconds, args.connections, args.latency_seconds)
    print(text)
    if not args.no_write:
        write_section(SECTION, text, args.output)
    return text


if __name__ == "__main__":
    main()
