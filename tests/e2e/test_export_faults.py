"""The collector refusing connections, answering 503 or 429, or answering too
slowly: every request still succeeds at its normal latency, the outage is logged
once, and spans of requests made after the collector recovers arrive.

Latency is compared as a generous ratio to the same run's healthy phase, never
against a wall-clock threshold.
"""

import statistics
import time

import pytest

from tracing_app.devtools.receiver import Fault, OTLPReceiver

from .stack import DEADLINE

FAST_FAILURE = {
    "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",  # one export request: 1 s
    "OTEL_BSP_EXPORT_TIMEOUT": "3000",  # one batch, retries included: 3 s
    "OTEL_BSP_SCHEDULE_DELAY": "100",
}
FAULTS = {
    "503": Fault(status=503),
    "429 with Retry-After": Fault(status=429, retry_after="1"),
    "slow": Fault(delay=3.0),
}


def requests(web, count):
    """``count`` requests; their latencies and trace ids. Every one must succeed."""
    latencies, trace_ids = [], []
    for _ in range(count):
        started = time.perf_counter()
        status, headers, _ = web.request("GET", "/api/orders/999/")
        latencies.append(time.perf_counter() - started)
        assert status == 404, "the request must be served normally"
        trace_ids.append(headers["traceresponse"].split("-")[1])
    return latencies, trace_ids


def server_spans_of(receiver, trace_ids, timeout=DEADLINE):
    wanted = set(trace_ids)
    return receiver.wait_for(
        lambda spans: wanted <= {s.trace_id for s in spans if s.kind == "SERVER"}, timeout=timeout)


@pytest.mark.parametrize("fault", ["refused", *FAULTS])
def test_collector_outage_never_slows_requests_and_export_resumes(stack, otlp, fault):
    web = stack.start_web(**FAST_FAILURE)
    healthy, healthy_ids = requests(web, 20)
    server_spans_of(otlp, healthy_ids)

    receiver = otlp
    if fault == "refused":
        otlp.stop()
    else:
        otlp.fault = FAULTS[fault]
    outage, _ = requests(web, 20)
    time.sleep(1.5)  # let the exporter meet the fault (and give up on a batch or two)
    during, _ = requests(web, 20)

    if fault == "refused":
        receiver = OTLPReceiver(port=otlp.port).start()
    else:
        otlp.fault = Fault()
    try:
        _, recovered_ids = requests(web, 10)
        server_spans_of(receiver, recovered_ids)
    finally:
        if receiver is not otlp:
            receiver.stop()

    ratio = statistics.median(outage + during) / statistics.median(healthy)
    assert ratio < 3, f"requests got {ratio:.1f}x slower while the collector was failing"
    # The receiver has the spans before its answer reaches the exporter, which then logs the recovery.
    output = web.process.wait_for_output("recovered after")
    # One line when the outage starts; refused on this machine reads as "nothing listens at".
    assert output.count("cannot export spans") + output.count("nothing listens at") == 1, output
    assert output.count("recovered after") == 1, output
