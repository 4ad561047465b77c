pytest_plugins = ["tracing_app.testing"]


def pytest_terminal_summary(terminalreporter):
    """Say which backends the end-to-end tests ran on: a green run on SQLite is not one on PostgreSQL."""
    from tests.e2e.stack import USED, backends

    terminalreporter.section("tracing_app backends")
    terminalreporter.write_line(f"run default: {backends().summary()}")
    for database, broker in sorted(USED):
        terminalreporter.write_line(f"end-to-end tests ran on: database={database}, broker={broker}")
    if not USED:
        terminalreporter.write_line("no end-to-end test ran")
