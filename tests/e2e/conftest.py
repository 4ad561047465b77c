"""Fixtures that start the real stack. They fail, never skip, when PostgreSQL or
RabbitMQ cannot be reached."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tracing_app.receiver import OTLPReceiver

from .stack import Database, Stack, delete_queues, run_id


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def otlp() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        yield receiver


@pytest.fixture
def database() -> Iterator[Database]:
    db = Database(f"e2e_{run_id()}").create()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def stack(request, database: Database, otlp: OTLPReceiver) -> Iterator[Stack]:
    """A migrated database, a queue of this test's own, no processes yet."""
    queue = f"e2e-{run_id()}"
    stack = Stack(database, queue, otlp.endpoint)
    migrate = stack.manage("migrate", "--noinput", OTEL_SDK_DISABLED="true")
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    try:
        yield stack
    finally:
        stack.stop()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            print(stack.logs())
        delete_queues(queue)
