"""Cost of extracting hostile trace headers: tracing_app's bounded propagators against
the OpenTelemetry SDK's, measured in the same run (ratios, not absolute targets).

    python bench/bench_propagation.py

The SDK's baggage extractor copies the whole baggage dict once per entry, so its
cost grows with the square of the entry count; ours parses once and builds the
context in one copy. Exits non-zero when ours is not cheaper at the W3C limit.
"""

from __future__ import annotations

import logging
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.baggage.propagation import W3CBaggagePropagator  # noqa: E402
from opentelemetry.context import Context  # noqa: E402
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: E402

from tracing_app.context.propagators import BaggagePropagator, TraceContextPropagator

logging.disable(logging.CRITICAL)  # the SDK logs every rejected header; we measure parsing, not logging


def per_call_us(function, carrier: dict[str, str]) -> float:
    context = Context()
    timer = timeit.Timer(lambda: function(carrier, context))
    number, _ = timer.autorange()
    return min(timer.repeat(5, number)) / number * 1e6


def baggage_with(entries: int, value: str = "v") -> dict[str, str]:
    return {"baggage": ",".join(f"key{i}={value}" for i in range(entries))}


CASES = {
    "baggage, 18 entries": baggage_with(18),
    "baggage, 180 entries (W3C limit)": baggage_with(180),
    "baggage, 180 long entries (8 KiB)": baggage_with(180, "x" * 35),
    "baggage, 2000 header lines joined": {"baggage": ",".join(["tenant.id=x"] * 2000)},
    "baggage, 180 invalid entries": {"baggage": ",".join(["bad key=1"] * 180)},
    "traceparent + tracestate (32 members)": {
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": ",".join(f"k{i}=v{i}" for i in range(32)),
    },
}


def main() -> int:
    stock_baggage, our_baggage = W3CBaggagePropagator(), BaggagePropagator()
    stock_trace, our_trace = TraceContextTextMapPropagator(), TraceContextPropagator()
    results = {}
    print(f"{'case':42} {'SDK µs':>9} {'ours µs':>9} {'SDK/ours':>9}")
    for name, carrier in CASES.items():
        stock, ours = (stock_trace, our_trace) if "traceparent" in carrier else (stock_baggage, our_baggage)
        sdk_us = per_call_us(stock.extract, carrier)
        our_us = per_call_us(ours.extract, carrier)
        results[name] = (sdk_us, our_us)
        print(f"{name:42} {sdk_us:9.1f} {our_us:9.1f} {sdk_us / our_us:9.1f}")
    small, limit = results["baggage, 18 entries"], results["baggage, 180 entries (W3C limit)"]
    print(f"growth 18 -> 180 entries: SDK x{limit[0] / small[0]:.1f}, ours x{limit[1] / small[1]:.1f} (linear: x10)")
    return 0 if limit[1] < limit[0] else 1


if __name__ == "__main__":
    sys.exit(main())
