"""celery beat as its own process: each scheduled send is the root of a trace
of its own named after its schedule entry, beat is named by its role, and the worker's
run joins the trace. Real beat and worker processes, the demo's schedule and task."""

from __future__ import annotations

import sys

from tracing_app.testing import Expect, assert_trace

ENTRY = "reject-stale-orders"
RUN = Expect(ENTRY, kind="INTERNAL", service="shop-beat", error=False, attributes={
    "celery.beat.entry.name": ENTRY, "celery.task.name": "inventory.reject_stale_orders"}, children=[
    Expect("send inventory.reject_stale_orders", kind="PRODUCER", service="shop-beat", children=[
        Expect("process inventory.reject_stale_orders", kind="CONSUMER", service="shop-worker", error=False,
               children=[Expect("UPDATE orders_order", kind="CLIENT", service="shop-worker")]),
    ]),
])
MAKE_STALE_ORDER = (
    "import datetime; from django.utils import timezone; from apps.orders.models import Order; "
    "order = Order.objects.create(sku='widget', quantity=1); "
    "Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - datetime.timedelta(hours=1)); "
    "print(order.pk)"
)


def complete_runs(spans) -> list[list]:
    """The spans of each beat run whose worker side has arrived too."""
    roots = [s for s in spans if s.name == ENTRY]
    runs = [[s for s in spans if s.trace_id == root.trace_id] for root in roots]
    return [run for run in runs if any(s.name == "UPDATE orders_order" for s in run)]


def test_each_scheduled_send_is_a_trace_of_its_own_that_the_worker_joins(stack, otlp, tmp_path):
    made = stack.manage("shell", "-c", MAKE_STALE_ORDER, OTEL_SDK_DISABLED="true")
    assert made.returncode == 0, made.stdout + made.stderr
    order_id = int(made.stdout.split()[-1])
    stack.start_worker("-P", "solo").wait_output("ready.")
    # No OTEL_SERVICE_NAME: beat is named by the role rule (settings' SERVICE_NAMES["beat"]).
    beat = stack.start("beat", [sys.executable, "-m", "celery", "-A", "project", "beat", "-l", "info",
                                "-s", str(tmp_path / "schedule")],
                       stack.env(None, STALE_ORDER_CHECK_INTERVAL="1"))
    spans = otlp.wait_for(lambda spans: len(complete_runs(spans)) >= 2)
    beat.stop()
    runs = complete_runs(spans)[:2]
    for run in runs:
        assert_trace(run, RUN)
    assert len({run[0].trace_id for run in runs}) == 2, "each scheduled send starts a trace of its own"
    roots = [next(s for s in run if s.name == ENTRY) for run in runs]
    assert all(root.parent_id == "" for root in roots)
    assert {root.resource["tracing_app.process.role"] for root in roots} == {"beat"}
    assert stack.database.query("select status from orders_order where id = %s", order_id) == [("rejected",)]
