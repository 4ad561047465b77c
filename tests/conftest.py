import pytest

pytest_plugins = ["tracing_app.testing"]


def pytest_runtest_setup(item):
    """``@pytest.mark.services``: this test proves something only on the real servers, so it
    fails (never skips) when the run fell back to the embedded backends."""
    from tests.e2e.stack import backends

    if item.get_closest_marker("services") and backends().why:
        pytest.fail("needs the real PostgreSQL and RabbitMQ: " + "; ".join(backends().why), pytrace=False)


def pytest_terminal_summary(terminalreporter):
    """Say which backends the end-to-end tests ran on: a green run on SQLite is not one on PostgreSQL."""
    from tests.e2e.stack import USED, backends

    terminalreporter.section("tracing_app backends")
    terminalreporter.write_line(f"run default: {backends().summary()}")
    for database, broker in sorted(USED):
        terminalreporter.write_line(f"end-to-end tests ran on: database={database}, broker={broker}")
    if not USED:
        terminalreporter.write_line("no end-to-end test ran")
