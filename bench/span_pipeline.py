"""Span pipeline: ``python -m bench.span_pipeline [--seconds S]``.

How many spans per second one process can create and export over OTLP/HTTP
without dropping any, and the CPU each exported span costs, for tracing_app's
pipeline (whatever ``tracing_app.pipeline.provider.build_provider`` builds from the
default settings) against the OpenTelemetry SDK's ``BatchSpanProcessor`` +
``OTLPSpanExporter`` with their defaults.

Each measurement is a fresh child process that creates spans shaped like the
demo's database spans at a fixed rate for ``--seconds``, then shuts its provider
down. ``bench.sink`` (another process) counts what arrived: dropped = created -
received. A rate is *sustained* when nothing was dropped, the child kept the
rate, and the final flush took under a second (a pipeline that is falling behind
has a long queue to flush). Rates double from 1000/s until one is not sustained,
then three bisection steps narrow it down; the two pipelines take turns step by
step. A last run creates spans flat out to show what overload does to drops and memory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.stack import ROOT

from .harness import BENCHMARKS_MD, Sink, environment, table, verdict, write_section

SECTION = "span_pipeline"
PIPELINES = ("tracing_app", "sdk", "none", "none-fast")
LABELS = {"tracing_app": "tracing_app", "sdk": "SDK BatchSpanProcessor + OTLPSpanExporter", "none": "no processor",
          "none-fast": "tracing_app's tracer, no processor"}
# What creating the spans costs each pipeline without exporting them: the rest is export.
CREATION = {"tracing_app": "none-fast", "sdk": "none"}
ATTRIBUTES = {
    "db.system.name": "postgresql",
    "db.namespace": "shop",
    "server.address": "127.0.0.1",
    "server.port": 5432,
    "db.operation.name": "INSERT",
    "db.collection.name": "orders_order",
    "db.query.text": 'INSERT INTO "orders_order" ("sku", "quantity", "status", "created_at") '
                     'VALUES (%s, %s, %s, %s) RETURNING "orders_order"."id"',
}
FIRST_RATE = 1000
MAX_RATE = 128000


def build_provider(pipeline: str, endpoint: str, service: str):
    if pipeline == "tracing_app":
        from tracing_app.conf import resolve
        from tracing_app.pipeline import provider

        return provider.build_provider(resolve({"SERVICE_NAME": service, "OTLP_ENDPOINT": endpoint}, {}))
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    tracer_provider = TracerProvider(resource=Resource.create({"service.name": service}), shutdown_on_exit=False)
    if pipeline == "sdk":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
    return tracer_provider


def child(pipeline: str, rate: float, seconds: float, endpoint: str, service: str) -> dict:
    """Create spans at ``rate`` per second (0: flat out) for ``seconds``; report counts and costs."""
    from opentelemetry.trace import SpanKind

    tracer_provider = build_provider(pipeline, endpoint, service)
    tracer = tracer_provider.get_tracer("bench")
    if pipeline in ("tracing_app", "none-fast"):
        from tracing_app.pipeline.fast_spans import fast_tracer

        tracer = fast_tracer(tracer)  # what tracing_app.get_tracer() gives our integrations
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu_started = time.process_time()
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds
    created = 0
    tick = 0.01  # create the spans due, then sleep to the next tick: no sleep per span
    while (now := clock()) < deadline:
        due = int((now - started) * rate) + 1 if rate else created + 100
        while created < due:
            tracer.start_span("INSERT orders_order", kind=SpanKind.CLIENT, attributes=ATTRIBUTES).end()
            created += 1
        if rate:
            time.sleep(max(0.0, tick - (clock() - now)))
    elapsed = clock() - started
    flush_started = clock()
    tracer_provider.shutdown()
    return {
        "created": created,
        "achieved": created / elapsed,
        "flush_s": clock() - flush_started,
        "cpu_s": time.process_time() - cpu_started,
        "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
    }


def run_child(sink: Sink, pipeline: str, rate: float, seconds: float) -> dict:
    service = f"pipe-{pipeline}-{int(rate)}-{os.urandom(4).hex()}"
    # No OTEL_* variables: both pipelines run with their defaults (the SDK honours OTEL_SDK_DISABLED).
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    done = subprocess.run(
        [sys.executable, "-m", "bench.span_pipeline", "--child", pipeline, "--rate", str(rate),
         "--seconds", str(seconds), "--endpoint", sink.endpoint, "--service", service],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{pipeline} at {rate}/s failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["received"] = sink.counts().get(service, 0) if not pipeline.startswith("none") else result["created"]
    result["dropped"] = result["created"] - result["received"]
    result["rate"] = rate
    result["cpu_us_per_span"] = result["cpu_s"] / max(1, result["created"]) * 1e6
    result["sustained"] = (result["dropped"] == 0 and result["flush_s"] < 1.0
                           and (not rate or result["achieved"] >= 0.95 * rate))
    return result


class Ladder:
    """The search for one pipeline's highest sustained rate.

    Rates double from FIRST_RATE until one is not sustained; then ``refinements``
    bisection steps (geometric) narrow the bracket. ``rate`` is the next rate to
    try, None when done.
    """

    def __init__(self, max_rate: float, refinements: int = 3) -> None:
        self.best, self.failed = 0.0, 0.0
        self.rate: float | None = FIRST_RATE
        self.max_rate, self.refinements = max_rate, refinements

    def record(self, sustained: bool) -> None:
        if sustained:
            self.best = self.rate
        else:
            self.failed = self.rate
        if not self.failed:
            self.rate = self.rate * 2 if self.rate * 2 <= self.max_rate else None
        elif self.best and self.refinements:
            self.refinements -= 1
            self.rate = round(math.sqrt(self.best * self.failed), -2)
        else:
            self.rate = None


def find_sustained(sink: Sink, pipelines: tuple[str, ...], seconds: float, log: list[dict],
                   max_rate: float) -> dict[str, float]:
    """Each pipeline's highest sustained rate (0 when none). The pipelines take turns,
    step by step, so a busy minute on this shared machine hits them alike."""
    ladders = {pipeline: Ladder(max_rate) for pipeline in pipelines}
    while any(ladder.rate for ladder in ladders.values()):
        for pipeline, ladder in ladders.items():
            if ladder.rate:
                result = run_child(sink, pipeline, ladder.rate, seconds)
                log.append({"pipeline": pipeline, **result})
                ladder.record(result["sustained"])
    return {pipeline: ladder.best for pipeline, ladder in ladders.items()}


def measure(seconds: float, max_rate: float = MAX_RATE) -> dict:
    sink = Sink()
    try:
        log: list[dict] = []
        sustained = find_sustained(sink, ("tracing_app", "sdk"), seconds, log, max_rate)
        cost = {pipeline: run_child(sink, pipeline, FIRST_RATE, seconds) for pipeline in PIPELINES}
        overload = {pipeline: run_child(sink, pipeline, 0, seconds) for pipeline in ("tracing_app", "sdk")}
        return {"sustained": sustained, "cost": cost, "overload": overload, "log": log}
    finally:
        sink.stop()


def report(results: dict, seconds: float) -> str:
    sustained, cost, overload = results["sustained"], results["cost"], results["overload"]
    rows = []
    for pipeline in ("tracing_app", "sdk"):
        total, creation = cost[pipeline]["cpu_us_per_span"], cost[CREATION[pipeline]]["cpu_us_per_span"]
        rows.append([
            LABELS[pipeline], f"{sustained[pipeline]:.0f}",
            f"{total:.1f}", f"{creation:.1f}", f"{total - creation:.1f}",
            f"{overload[pipeline]['achieved']:.0f}",
            f"{overload[pipeline]['dropped']} ({overload[pipeline]['dropped'] / overload[pipeline]['created']:.0%})",
            f"{overload[pipeline]['rss_growth_mb']:.1f}",
        ])
    steps = [[LABELS[r["pipeline"]], f"{r['rate']:.0f}", f"{r['achieved']:.0f}", str(r["dropped"]),
              f"{r['flush_s']:.2f}", "yes" if r["sustained"] else "no"] for r in results["log"]]
    ratio = sustained["tracing_app"] / sustained["sdk"] if sustained["sdk"] else float("inf")
    targets = [["export throughput ≥ 2x SDK BatchSpanProcessor + OTLP, zero drops",
                f"{sustained['tracing_app']:.0f}/s vs {sustained['sdk']:.0f}/s = {ratio:.2f}x", verdict(ratio >= 2)]]
    return "\n\n".join([
        "## Span pipeline (`python -m bench.span_pipeline`)",
        environment(),
        f"One process creates spans shaped like the demo's INSERT span (7 attributes) for {seconds:g} s per step "
        f"and exports them over OTLP/HTTP to a sink process. CPU per span is the process's CPU time (all threads) "
        f"at {FIRST_RATE} spans/s divided by spans; creating is the same with no processor (the SDK's tracer, "
        f"or the one tracing_app's integrations use), export the rest.",
        table(["pipeline", "sustained spans/s, 0 dropped", "CPU µs/span", "of which creating", "of which export",
               "flat out: created/s",
               "flat out: dropped", "flat out: RSS growth MB"], rows),
        table(["target", "measured", ""], targets),
        "Steps tried:",
        table(["pipeline", "target/s", "achieved/s", "dropped", "final flush s", "sustained"], steps),
    ])


def main(argv: list[str] | None = None) -> str | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per step")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD, help="the Markdown file to update")
    parser.add_argument("--max-rate", type=float, default=MAX_RATE, help="stop the ladder here")
    parser.add_argument("--child", choices=PIPELINES, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--service", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.rate, args.seconds, args.endpoint, args.service)))
        return None
    text = report(measure(args.seconds, args.max_rate), args.seconds)
    print(text)
    if not args.no_write:
        write_section(SECTION, text, args.output)
    return text


if __name__ == "__main__":
    main()
