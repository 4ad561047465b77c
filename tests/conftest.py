import os

import pytest

pytest_plugins = ["tracing_app.testing"]

NEEDS_SERVICES: list[str] = []  # services tests that did not run, for the terminal summary


def pytest_runtest_setup(item):
    """``@pytest.mark.services``: the test measures the real PostgreSQL and RabbitMQ
    (benchmarks), so the embedded backends cannot stand in. When the run fell back to
    them it does not run, and the summary lists it; under TRACING_REQUIRE_SERVICES=1
    (CI) it fails instead."""
    from tests.e2e.stack import backends

    if item.get_closest_marker("services") and backends().why:
        reason = "needs the real PostgreSQL and RabbitMQ: " + "; ".join(backends().why)
        if os.environ.get("TRACING_REQUIRE_SERVICES") == "1":
            pytest.fail(reason, pytrace=False)
        NEEDS_SERVICES.append(item.nodeid)
        pytest.skip(reason)


def pytest_terminal_summary(terminalreporter):
    """Say which backends the end-to-end tests ran on: a green run on SQLite is not one on PostgreSQL."""
    from tests.e2e.stack import USED, backends

    terminalreporter.section("tracing_app backends")
    terminalreporter.write_line(f"run default: {backends().summary()}")
    for database, broker in sorted(USED):
        terminalreporter.write_line(f"end-to-end tests ran on: database={database}, broker={broker}")
    if not USED:
        terminalreporter.write_line("no end-to-end test ran")
    if NEEDS_SERVICES:
        terminalreporter.write_line(f"{len(NEEDS_SERVICES)} test(s) need the real services and did not run:")
        for nodeid in NEEDS_SERVICES:
            terminalreporter.write_line(f"  {nodeid}")
