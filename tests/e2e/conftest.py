"""Fixtures that start the real stack on the backends ``stack.backends()`` chose:
PostgreSQL and RabbitMQ when reachable, the embedded ones otherwise (an error
instead under TRACING_REQUIRE_SERVICES=1). A test parametrized indirectly with
``stack="embedded"`` runs on the embedded backends whatever is reachable; with
``stack="redis"``, on the chosen database and Redis as the broker (Redis must be
reachable: an error under TRACING_REQUIRE_SERVICES=1, else skipped and listed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .stack import EMBEDDED, Stack, StackReceiver, backends, make_broker, make_database, run_id


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def otlp() -> Iterator[StackReceiver]:
    with StackReceiver() as receiver:
        yield receiver


@pytest.fixture
def stack(request, otlp: StackReceiver) -> Iterator[Stack]:
    """A migrated database, a queue of this test's own, no processes yet."""
    param = getattr(request, "param", "default")
    chosen = EMBEDDED if param == "embedded" else backends()
    broker = make_broker(chosen, "redis" if param == "redis" else "")
    database = make_database(chosen, "redis" if param == "redis" else "")
    queue = f"e2e-{run_id()}"
    stack = Stack(database, broker, queue, otlp.endpoint, otlp)
    try:
        migrate = stack.manage("migrate", "--noinput", OTEL_SDK_DISABLED="true")
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        yield stack
    finally:
        stack.stop()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            print(stack.logs())
        broker.cleanup(queue, stack.notifications_queue, stack.events_exchange)
        database.drop()
