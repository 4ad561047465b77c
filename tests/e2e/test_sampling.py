"""Head sampling across processes: the web decides by rule, the worker (configured to
keep everything) follows, so each trace arrives whole or not at all."""

import json
from collections import defaultdict

ORDERS = 16
MARKER_TRACE = "5bf92f3577b34da6a3ce929d0e0e4736"


def test_sampling_rules_keep_or_drop_whole_traces_across_processes(stack, otlp):
    stack.start_pricing()  # project.settings too: it follows the sampled flag of each call
    web = stack.start_web(DJANGO_SETTINGS_MODULE="tests.e2e.sampling_settings")
    stack.start_worker("-P", "prefork", "-c", "1")  # project.settings: SAMPLE_RATIO 1, no rules
    order = json.dumps({"sku": "widget", "quantity": 1}).encode()
    ids = []
    for _ in range(ORDERS):  # rule: POST /api/orders/ at 0.5
        status, _, body = web.request("POST", "/api/orders/", order)
        assert status == 201, body
        ids.append(json.loads(body)["id"])
    for order_id in ids:  # rule: route name order-detail at 0
        assert web.request("GET", f"/api/orders/{order_id}/")[0] == 200
    # A sampled parent overrides the root rules; the worker runs tasks one by one, so
    # when this order's task span arrives, every earlier task has been exported (and
    # pricing exports in the order it answers: its two spans of this order come last).
    status, _, _ = web.request("POST", "/api/orders/", order,
                               headers={"traceparent": f"00-{MARKER_TRACE}-00f067aa0ba902b7-01"})
    assert status == 201
    spans = otlp.wait_for(lambda spans: any(s.trace_id == MARKER_TRACE and s.kind == "CONSUMER" for s in spans)
                          and sum(s.trace_id == MARKER_TRACE and s.service == "shop-pricing" and s.kind == "SERVER"
                                  for s in spans) == 2)

    traces = defaultdict(list)
    for span in spans:
        if span.trace_id != MARKER_TRACE:
            traces[span.trace_id].append(span)
    assert not [s for s in spans if s.name.startswith("GET ")], "route-name rule at ratio 0"
    assert 0 < len(traces) < ORDERS, f"ratio 0.5 over {ORDERS} orders kept {len(traces)}"
    for trace_id, trace in traces.items():
        names = sorted(s.name for s in trace if s.kind in ("SERVER", "PRODUCER", "CONSUMER"))
        assert names == ["POST api/orders/", "process inventory.reserve_stock", "send inventory.reserve_stock",
                         "shop.pricing.v1.Pricing/GetQuote", "shop.pricing.v1.Pricing/GetQuote"], \
            f"trace {trace_id} is not whole: {names}"
        assert {s.service for s in trace} == {"shop-web", "shop-worker", "shop-pricing"}
    statuses = stack.database.query("select count(*) from orders_order where status = 'reserved'")
    assert statuses == [(ORDERS + 1,)], "dropped traces still did their work"
