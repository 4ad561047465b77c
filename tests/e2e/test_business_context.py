"""Business context, log correlation and privacy across gunicorn, RabbitMQ, a Celery
prefork worker, the pricing gRPC service, the outbox relay and the notifications
consumer (raw kombu), checked on the OTLP bytes the processes export."""

import json
import re

ALICE = {"Authorization": "Bearer acme-alice"}  # user 101 of tenant acme, alice@acme.example


def log_lines(process, text):
    return [line for line in process.output().splitlines() if text in line]


def trace_id_in(line):
    match = re.search(r"trace_id=([0-9a-f]{32}) span_id=([0-9a-f]{16})", line)
    assert match, line
    return match.group(1)


def test_tenant_reaches_every_span_and_log_line_in_web_worker_pricing_relay_and_consumer(stack, otlp):
    stack.start_pricing()
    web = stack.start_web()
    worker = stack.start_worker("-P", "prefork", "-c", "1")
    stack.start_consumer().wait_output("consuming from")
    stack.start_relay()
    # The client also claims another tenant in baggage: the trust boundary drops it.
    status, headers, body = web.request("POST", "/api/orders/", json.dumps({"sku": "widget", "quantity": 1}).encode(),
                                        headers={**ALICE, "baggage": "tenant.id=globex,enduser.id=1"})
    assert status == 201, body
    order_id = json.loads(body)["id"]
    trace_id = headers["traceresponse"].split("-")[1]

    spans = otlp.wait_for(lambda spans: {"process inventory.reserve_stock", "process orders.send_confirmation",
                                         "send order.created", "process order.created"}
                          <= {s.name for s in spans if s.trace_id == trace_id}
                          and sum(s.service == "shop-pricing" and s.kind == "SERVER" for s in spans) == 2)
    trace = [s for s in spans if s.trace_id == trace_id]
    # The pricing server (gRPC, from web and worker) gets the baggage through the call's metadata.
    assert {s.service for s in trace} == {"shop-web", "shop-worker", "shop-pricing", "shop-relay",
                                          "shop-notifications"}
    worker_spans = [s for s in trace if s.service == "shop-worker"]
    assert len(worker_spans) >= 6  # two task runs and their queries
    for span in trace:
        assert (span.attributes.get("tenant.id"), span.attributes.get("enduser.id")) == ("acme", "101"), span.name

    exported = b"".join(otlp.bodies)
    assert b"globex" not in exported, "a forged tenant never reaches telemetry"
    assert b"alice@acme.example" not in exported and b"alice" not in exported, "no e-mail (a task argument) or name"

    web_line = log_lines(web.process, f"order {order_id} created")
    worker_line = log_lines(worker, f"reserving stock for order {order_id} of tenant acme")
    assert web_line and worker_line, stack.logs()
    assert trace_id_in(web_line[0]) == trace_id and "[shop-web " in web_line[0]
    assert trace_id_in(worker_line[0]) == trace_id and "[shop-worker " in worker_line[0]
    consumer = next(s for s in trace if s.name == "process inventory.reserve_stock")
    assert re.search(rf"span_id={consumer.span_id}\]", worker_line[0]), "the task's log line names its span"


def test_log_lines_outside_a_span_have_empty_ids(stack, otlp):
    result = stack.manage("shell", "-c", "import logging; logging.getLogger('cmd').warning('no span here')")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if "no span here" in line)
    assert "[shop-manage trace_id= span_id=]" in line
