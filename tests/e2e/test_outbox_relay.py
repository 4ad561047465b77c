"""Two ``relay_outbox`` processes on one outbox: every event is published exactly once."""

from __future__ import annotations

from kombu import Connection, Exchange, Queue

from .stack import BROKER_URL, DEADLINE, require_real_services

EVENTS = 1000


def test_two_relays_never_publish_the_same_event_twice(stack):
    require_real_services("SELECT ... FOR UPDATE SKIP LOCKED")
    exchange = Exchange(stack.events_exchange, "topic", durable=True)
    queue = Queue(stack.notifications_queue, exchange, routing_key="#", durable=True)
    with Connection(BROKER_URL) as conn:
        queue(conn.default_channel).declare()
        stack.database.query(
            "insert into tracing_app_outboxevent (message_id, exchange, routing_key, payload, headers, trace_context,"
            " created_at) select gen_random_uuid(), %s, 'order.created', jsonb_build_object('order_id', n), '{}',"
            " '{}', now() from generate_series(1, %s) as n returning id", stack.events_exchange, EVENTS)
        relays = [stack.start_relay("--once", "--batch-size", "5", "--interval", "0.05") for _ in range(2)]
        for relay in relays:
            assert relay.wait(DEADLINE) == 0, relay.output()

        ids = []
        bound = queue(conn.default_channel)
        while (message := bound.get(no_ack=True)) is not None:
            ids.append(message.properties["message_id"])
    published = [int(relay.output().rpartition("published ")[2].split()[0]) for relay in relays]
    assert sum(published) == EVENTS, published
    assert min(published) > 0, f"both relays took part (the test is about contention): {published}"
    assert len(ids) == EVENTS and len(set(ids)) == EVENTS, "each event exactly once"
    assert stack.database.query("select count(*) from tracing_app_outboxevent where published_at is null") == [(0,)]
