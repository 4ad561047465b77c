"""Choosing the test run's backends: the real servers when reachable, the embedded ones
otherwise, an error under TRACING_REQUIRE_SERVICES=1, and a summary that says which."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e import stack

DEAD = {"E2E_POSTGRES_URL": "postgres://postgres@127.0.0.1:1/postgres",
        "E2E_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"}


@pytest.fixture
def probes(monkeypatch):
    """Set what each probe reports; the run's own choice is restored afterwards."""
    problems = {"postgres": "", "rabbitmq": ""}
    monkeypatch.setattr(stack, "postgres_problem", lambda: problems["postgres"])
    monkeypatch.setattr(stack, "rabbitmq_problem", lambda: problems["rabbitmq"])
    for name in ("TRACING_REQUIRE_SERVICES", "TRACING_EMBEDDED"):
        monkeypatch.delenv(name, raising=False)
    stack.backends.cache_clear()
    yield problems
    stack.backends.cache_clear()


def test_reachable_services_are_used(probes):
    assert stack.backends() == stack.Backends("postgresql", "rabbitmq")


def test_an_unreachable_service_falls_back_to_its_embedded_backend_and_says_why(probes):
    probes["rabbitmq"] = "OperationalError: refused"
    chosen = stack.backends()
    assert (chosen.database, chosen.broker) == ("postgresql", "filesystem")
    assert "RabbitMQ unreachable, embedded backend used: OperationalError: refused" in chosen.summary()


def test_required_services_make_unreachable_an_error(probes, monkeypatch):
    monkeypatch.setenv("TRACING_REQUIRE_SERVICES", "1")
    probes["postgres"] = "OperationalError: refused"
    with pytest.raises(stack.ServicesUnavailable, match="PostgreSQL is unreachable"):
        stack.backends()


def test_embedded_on_purpose_does_not_probe(probes, monkeypatch):
    monkeypatch.setenv("TRACING_EMBEDDED", "1")
    monkeypatch.setattr(stack, "postgres_problem", lambda: pytest.fail("probed"))
    assert stack.backends().embedded


def run_pytest(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TRACING_"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=stack.ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=300)


def test_a_run_without_services_passes_and_its_summary_names_the_embedded_backends():
    result = run_pytest("tests/test_waterfall.py", **DEAD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tracing_app backends" in result.stdout
    assert "database: SQLite (embedded); broker: kombu filesystem transport (embedded)" in result.stdout


def test_a_run_without_services_fails_when_they_are_required():
    result = run_pytest("tests/test_waterfall.py", TRACING_REQUIRE_SERVICES="1", **DEAD)
    assert result.returncode != 0
    assert "TRACING_REQUIRE_SERVICES=1 but PostgreSQL is unreachable" in result.stdout + result.stderr


def test_tests_that_measure_the_real_services_are_listed_not_run_on_embedded_backends():
    """Relies on the benchmarks' smoke tests, the ones marked ``services``."""
    result = run_pytest("-m", "services", "tests", **DEAD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test(s) need the real services and did not run:" in result.stdout
    assert "needs the real PostgreSQL and RabbitMQ" in result.stdout
    required = run_pytest("-m", "services", "tests", TRACING_EMBEDDED="1", TRACING_REQUIRE_SERVICES="1")
    assert required.returncode == 1 and "needs the real PostgreSQL and RabbitMQ" in required.stdout
