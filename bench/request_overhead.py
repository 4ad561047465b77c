"""Request overhead: ``python -m bench.request_overhead [--rounds N --seconds S]``.

The demo's ``POST /api/orders/`` (a pricing gRPC call, an ORM insert and a Celery publish to
RabbitMQ), ``GET /api/orders/<id>/`` and ``GET /api/products/widget/price/`` (Django's cache
``get_or_set``: the shop's cached price, so the cache integration's spans are in the figures)
against gunicorn with one sync worker and real PostgreSQL, in five modes served side by side,
one gunicorn each:

- untraced: no tracing middleware, ``tracing_app`` disabled (installed only for the
  outbox table the demo writes to; ``bench.settings_untraced``);
- disabled: installed, ``OTEL_SDK_DISABLED=true``;
- sampled 0%: installed, exporting, ratio sampler at 0;
- sampled 100%: installed, every request traced and exported over OTLP/HTTP;
- plain OpenTelemetry: the upstream Django + Celery + psycopg instrumentations
  with the SDK's batch processor and OTLP/HTTP exporter (``bench.otel_wsgi``).

Spans go to ``bench.sink --defer`` in its own process: it stores the bodies and decodes them
(to count spans per mode) only after the measurement, so the receiver's CPU is not in the
figures. The load generator (``bench.loadgen``) is its own process too and interleaves the
modes request by request, so load from other processes on this shared machine hits every mode
alike. The run is cut into ``--rounds`` of ``--seconds``; the spread of the
per-round ratios shows how noisy the machine was.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
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
    price: list[float] = dataclasses.field(default_factory=list)
    round_times: list[float] = dataclasses.field(default_factory=list)  # mean seconds per request, per round
    cpu: float = 0.0  # seconds of CPU the gunicorn worker (all its threads) used in measured segments
    requests_sent: int = 0
    errors: int = 0
    spans: int = 0
    web: WebServer | None = None
    worker_pid: int = 0

    @property
    def requests(self) -> int:
        return len(self.post) + len(self.get) + len(self.price)

    @property
    def time_per_request(self) -> float:
        return (sum(self.post) + sum(self.get) + sum(self.price)) / self.requests

    @property
    def rate(self) -> float:
        return 1 / self.time_per_request


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

    def run(self, urls: list[str], seconds: float) -> dict:
        self.popen.stdin.write(json.dumps({"urls": urls, "seconds": seconds, "price": True}) + "\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        return json.loads(line)

    def stop(self) -> None:
        self.popen.stdin.close()
        self.popen.wait(10)


def worker_pid(master_pid: int) -> int:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one gunicorn worker under {master_pid}, found {children}")
    return int(children[0])


def start_py_spy(mode: Mode, name: str) -> tuple[str, subprocess.Popen, Path]:
    """Sample ``mode``'s gunicorn worker with py-spy (``pip install py-spy``) during the measured rounds."""
    output = Path(tempfile.gettempdir()) / f"py-spy-{name.replace(' ', '-').replace('%', '')}-{os.getpid()}.txt"
    argv = ["py-spy", "record", "--pid", str(mode.worker_pid), "--rate", "250", "--nonblocking", "--full-filenames",
            "--format", "raw", "--output", str(output)]
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return name, popen, output


TRACING_FRAMES = ("/tracing_app/", "/opentelemetry/")
HOST_FRAMES = ("/django/", "/apps/", "/psycopg/", "/kombu/", "/celery/", "/amqp/", "/gunicorn/", "/grpc/")


def tracing_overhead(stack: list[str]) -> str:
    """The deepest tracing frame of a sample that is spent in tracing itself, else "".

    A sample is tracing's own time when its deepest tracing frame has no host
    frame (Django, the app, the driver, kombu) below it: time in the view or the
    query that a tracing frame merely wraps is not overhead.
    """
    owner = ""
    for frame in stack:
        if any(marker in frame for marker in TRACING_FRAMES):
            owner = frame
        elif owner and any(marker in frame for marker in HOST_FRAMES):
            owner = ""
    return owner


def stop_py_spy(name: str, popen: subprocess.Popen, output: Path) -> None:
    """Stop sampling; print tracing's own share of the worker's samples, by function."""
    popen.send_signal(signal.SIGINT)
    popen.wait(30)
    owners: dict[str, int] = {}
    total = 0
    for line in output.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        # "function (path:line)": drop the line so that a function counts once
        owner = tracing_overhead([frame.rpartition(":")[0] for frame in stack.split(";")])
        if owner:
            owners[owner] = owners.get(owner, 0) + int(count)
    print(f"py-spy, {name}: {total} samples of the worker (raw stacks: {output}); "
          f"tracing's own time {sum(owners.values()) / max(1, total):.1%}, by deepest tracing function:")
    for frame, count in sorted(owners.items(), key=lambda item: -item[1])[:25]:
        print(f"  {count / total:6.2%}  {frame}")


def measure(rounds: int, seconds: float, warmup: float, only: list[str] | None = None,
            profile: tuple[str, ...] = ()) -> list[Mode]:
    all_modes = [mode for mode in modes() if not only or mode.name in only or mode.name == "untraced"]
    sink = Sink(defer=True)
    load = None
    try:
        with BenchStack(sink.endpoint) as stack:
            for mode in all_modes:  # start them all, then wait: they boot in parallel
                mode.web = stack.start_gunicorn(mode.service, mode.app, "-c", "python:bench.gunicorn_conf",
                                                DJANGO_SETTINGS_MODULE=mode.settings, **mode.env)
            stack.wait_ready(*(mode.web for mode in all_modes))
            for mode in all_modes:
                mode.worker_pid = worker_pid(mode.web.process.popen.pid)
            load = LoadGenerator()
            urls = [mode.web.url for mode in all_modes]
            result = load.run(urls, warmup)
            for index, mode in enumerate(all_modes):
                mode.requests_sent += sum(len(result[kind][index]) for kind in ("post", "get", "price"))
            cpu_before = [cpu_seconds(mode.worker_pid) for mode in all_modes]
            spies = [start_py_spy(mode, mode.name) for mode in all_modes if mode.name in profile]
            for _ in range(rounds):
                result = load.run(urls, seconds)
                for index, mode in enumerate(all_modes):
                    post, get, price = result["post"][index], result["get"][index], result["price"][index]
                    mode.post += post
                    mode.get += get
                    mode.price += price
                    mode.errors += result["errors"][index]
                    done = post + get + price
                    mode.requests_sent += len(done)
                    mode.round_times.append(sum(done) / max(1, len(done)))
            for mode, before in zip(all_modes, cpu_before, strict=True):
                mode.cpu = cpu_seconds(mode.worker_pid) - before
            for spy in spies:
                stop_py_spy(*spy)
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
        sink.stop()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return q1, q2, q3


def report(all_modes: list[Mode], rounds: int, seconds: float) -> str:
    base = all_modes[0]
    base_time, base_cpu = base.time_per_request, base.cpu / base.requests
    stats = {}
    rows = []
    for mode in all_modes:
        # The median over rounds ignores a round that another process on this machine disturbed.
        low, ratio, high = quartiles([m / b for b, m in zip(base.round_times, mode.round_times, strict=True)])
        cpu = mode.cpu / mode.requests
        row = {
            "time": ratio,
            "added_us": (ratio - 1) * base_time * 1e6,
            "added_cpu_us": (cpu - base_cpu) * 1e6,
            "post_p50": percentile(mode.post, 50) / percentile(base.post, 50),
            "post_p99": percentile(mode.post, 99) / percentile(base.post, 99),
            "get_p50": percentile(mode.get, 50) / percentile(base.get, 50),
            "get_p99": percentile(mode.get, 99) / percentile(base.get, 99),
            "price_p50": percentile(mode.price, 50) / percentile(base.price, 50),
        }
        stats[mode.name] = row
        rows.append([
            mode.name, f"{mode.rate:.0f}", f"{ratio:.3f} ({low:.3f}–{high:.3f})", f"{row['added_us']:+.0f}",
            f"{cpu * 1e6:.0f} ({row['added_cpu_us']:+.0f})",
            f"{ms(percentile(mode.post, 50))} ({row['post_p50']:.3f})",
            f"{ms(percentile(mode.post, 99))} ({row['post_p99']:.3f})",
            f"{ms(percentile(mode.get, 50))} ({row['get_p50']:.3f})",
            f"{ms(percentile(mode.get, 99))} ({row['get_p99']:.3f})",
            f"{ms(percentile(mode.price, 50))} ({row['price_p50']:.3f})",
            f"{mode.spans / mode.requests_sent:.2f}",
        ])
    ours, plain = stats["sampled 100%"], stats["plain OpenTelemetry"]

    def share(key: str) -> float:
        return ours[key] / plain[key] if plain[key] > 0 else float("nan")

    targets = [
        ["100% sampled + export adds ≤ ½ of plain OpenTelemetry's time per request",
         f"{ours['added_us']:.0f} µs vs {plain['added_us']:.0f} µs = {share('added_us'):.2f}x",
         verdict(share("added_us") <= 0.5)],
        ["the same, in worker CPU per request",
         f"{ours['added_cpu_us']:.0f} µs vs {plain['added_cpu_us']:.0f} µs = {share('added_cpu_us'):.2f}x",
         verdict(share("added_cpu_us") <= 0.5)],
        ["sampled 0% ≤ 1.03x untraced", f"{stats['sampled 0%']['time']:.3f}x",
         verdict(stats["sampled 0%"]["time"] <= 1.03)],
        ["disabled ≤ 1.01x untraced", f"{stats['disabled']['time']:.3f}x", verdict(stats["disabled"]["time"] <= 1.01)],
    ]
    for name in ("sampled 0%", "sampled 100%"):
        for endpoint in ("post", "get"):
            p50, p99 = stats[name][f"{endpoint}_p50"], stats[name][f"{endpoint}_p99"]
            targets.append([f"{name}, {endpoint.upper()}: p99 ratio ≤ p50 ratio + 0.05",
                            f"{p99:.3f} vs {p50:.3f}", verdict(p99 <= p50 + 0.05)])
    header = ["mode", "req/s", "time/req vs untraced: median (quartiles)", "added µs/req",
              "worker CPU µs/req (added)", "POST p50 ms (ratio)", "POST p99 ms (ratio)",
              "GET p50 ms (ratio)", "GET p99 ms (ratio)", "cached price GET p50 ms (ratio)", "spans/req"]
    measured = sum(m.requests for m in all_modes)
    return "\n\n".join([
        "## Request overhead (`python -m bench.request_overhead`)",
        environment(),
        f"{rounds} rounds x {seconds:g} s, {measured} measured requests; one closed-loop client sends "
        "POST /api/orders/, GET /api/orders/<id>/ and GET /api/products/widget/price/ (cached: Django's "
        "cache get_or_set, local memory as the demo's default) to each mode in turn (modes interleaved request "
        "by request); "
        "gunicorn with one sync worker per mode. Time per request vs untraced is the median over rounds of the "
        "round's ratio of mean latencies; added µs/req applies it to untraced's mean. Worker CPU is the gunicorn "
        "worker's user + system time, export thread included, per request.",
        table(header, rows),
        table(["target", "measured", ""], targets),
    ])


def short_report(all_modes: list[Mode]) -> str:
    """For --modes: time and CPU per request against untraced, no targets."""
    base = all_modes[0]
    rows = []
    for mode in all_modes:
        ratio = statistics.median(m / b for b, m in zip(base.round_times, mode.round_times, strict=True))
        cpu = mode.cpu / mode.requests
        rows.append([mode.name, f"{mode.time_per_request * 1e6:.0f}", f"{ratio:.3f}",
                     f"{(ratio - 1) * base.time_per_request * 1e6:+.0f}",
                     f"{cpu * 1e6:.0f} ({(cpu - base.cpu / base.requests) * 1e6:+.0f})",
                     f"{percentile(mode.get, 99) / percentile(base.get, 99):.3f} vs "
                     f"{percentile(mode.get, 50) / percentile(base.get, 50):.3f}"])
    return table(["mode", "µs/req", "time/req vs untraced", "added µs/req", "worker CPU µs/req (added)",
                  "GET p99 vs p50 ratio"], rows)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8.0, help="per round (all modes)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds (all modes) before the first round")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD, help="the Markdown file to update")
    parser.add_argument("--modes", nargs="+", metavar="MODE", help="only these (and untraced); no BENCHMARKS.md")
    parser.add_argument("--profile", nargs="+", metavar="MODE", default=(), help="sample these workers with py-spy")
    args = parser.parse_args(argv)
    all_modes = measure(args.rounds, args.seconds, args.warmup, args.modes, args.profile)
    text = report(all_modes, args.rounds, args.seconds) if not args.modes else short_report(all_modes)
    print(text)
    if not args.no_write and not args.modes:
        write_section(SECTION, text, args.output)
    return text


if __name__ == "__main__":
    main()
