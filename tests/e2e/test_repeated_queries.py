"""Repeated queries flagged in a task run by a real worker process: the task's
CONSUMER span carries the count and one event per repeated shape, one log line in the
worker's output; a loop of exactly REPEATED_QUERY_THRESHOLD (the default, 10) is not flagged."""

from __future__ import annotations

STOCK = ('SELECT "inventory_stock"."id", "inventory_stock"."sku", "inventory_stock"."quantity" '
         'FROM "inventory_stock" WHERE "inventory_stock"."sku" = ? ORDER BY "inventory_stock"."id" ASC LIMIT ?')
ORDER = 'SELECT ? AS "a" FROM "orders_order" WHERE "orders_order"."sku" = ? LIMIT ?'
EVENT = "tracing_app.db.repeated_query"
COUNT = "tracing_app.db.repeated_query.count"


def test_a_task_in_a_real_worker_is_flagged_over_the_threshold_only(stack, otlp):
    worker = stack.start_worker("-P", "solo")
    worker.wait_output("ready.")
    runs = {
        "at": stack.publish("e2e.repeat_queries", 10, 10),  # exactly the threshold, twice: not flagged
        "over": stack.publish("e2e.repeat_queries", 11),
        "two": stack.publish("e2e.repeat_queries", 12, 11),  # two shapes over it: highest count first
    }

    def consumer(spans, task_id):
        return next((s for s in spans if s.kind == "CONSUMER" and s.attributes.get("messaging.message.id") == task_id),
                    None)

    spans = otlp.wait_for(lambda spans: all(consumer(spans, task_id) for task_id in runs.values()))
    found = {run: consumer(spans, task_id) for run, task_id in runs.items()}
    flagged = {run: (span.attributes.get(COUNT), [dict(a) for name, a in span.events if name == EVENT])
               for run, span in found.items()}
    assert flagged == {
        "at": (None, []),
        "over": (11, [{"db.query.text": STOCK, COUNT: 11}]),
        "two": (12, [{"db.query.text": STOCK, COUNT: 12}, {"db.query.text": ORDER, COUNT: 11}]),
    }
    # The query spans themselves are unchanged: 12 + 11 of the "two" run's CLIENT children, none flagged.
    queries = [s for s in spans if s.parent_id == found["two"].span_id and s.kind == "CLIENT"]
    texts = [s.attributes.get("db.query.text") for s in queries]
    assert (texts.count(STOCK), texts.count(ORDER)) == (12, 11)
    assert not any(COUNT in s.attributes or s.events for s in queries)
    # One log line per flagged run, none for the run at the threshold.
    assert worker.output().count("more than REPEATED_QUERY_THRESHOLD=10") == 2, worker.output()
