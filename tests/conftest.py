import pytest

pytest_plugins = ["tracing_app.testing"]
# Plain asserts in shared test helpers report their operands like those in test modules.
pytest.register_assert_rewrite("tests.captured")


def pytest_runtest_setup(item):
    """``@pytest.mark.services``: see ``tests.e2e.stack.require_real_services``."""
    from tests.e2e.stack import require_real_services

    if item.get_closest_marker("services"):
        require_real_services(item.nodeid)


def pytest_terminal_summary(terminalreporter):
    """Say which backends the end-to-end tests ran on: a green run on SQLite is not one on PostgreSQL."""
    from tests.e2e.stack import NEEDS_SERVICES, USED, backends

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
