"""manage.py tracing_check: the configuration with sources, a test span, and each failure kind."""

import socket
import sys

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from tracing_app.conf import get_config
from tracing_app.devtools.receiver import Fault, OTLPReceiver

from .e2e.stack import grpc_receiver


@pytest.fixture(autouse=True)
def fresh_config():
    yield
    get_config.cache_clear()  # environment variables set by a test must not outlive it


@pytest.fixture
def receiver():
    with OTLPReceiver() as receiver:
        yield receiver


def check(endpoint, *args, protocol="http/protobuf", **tracing):
    settings = {"SERVICE_NAME": "checked", "EXPORTER": "otlp", "OTLP_ENDPOINT": endpoint,
                "OTLP_PROTOCOL": protocol, **tracing}
    with override_settings(TRACING=settings):
        from io import StringIO

        out = StringIO()
        call_command("tracing_check", *args, stdout=out)
        return out.getvalue()


def dead_endpoint():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_success_prints_config_with_sources_and_sends_a_span(receiver, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    get_config.cache_clear()
    output = check(receiver.endpoint)
    lines = {line.split()[0]: line for line in output.splitlines() if line.startswith("  ") and line.split()}
    assert lines["SERVICE_NAME"].endswith("TRACING") and "'checked'" in lines["SERVICE_NAME"]
    assert lines["SAMPLE_RATIO"].endswith("env:OTEL_TRACES_SAMPLER_ARG") and "0.5" in lines["SAMPLE_RATIO"]
    assert lines["SHUTDOWN_TIMEOUT"].endswith("default")
    assert f"test span sent to {receiver.endpoint}/v1/traces: ok" in output
    span = receiver.wait_for(lambda spans: spans, timeout=5)[0]
    assert (span.name, span.service) == ("tracing_check", "checked")


def test_headers_are_not_printed(receiver):
    output = check(receiver.endpoint, OTLP_HEADERS={"authorization": "Bearer secret"})
    assert "secret" not in output and "'authorization': '***'" in output


@pytest.mark.parametrize("endpoint, kind, words", [
    ("http://no-such-collector.invalid:4318", "dns", "cannot resolve host 'no-such-collector.invalid'"),
    (None, "refused", "connection refused"),
])
def test_unreachable_collector_is_named(endpoint, kind, words):
    with pytest.raises(CommandError) as error:
        check(endpoint or dead_endpoint())
    assert f"[{kind}]" in str(error.value) and words in str(error.value) and "hint:" in str(error.value)


def test_timeout_is_named(receiver):
    receiver.fault = Fault(delay=5.0)
    with pytest.raises(CommandError, match=r"\[timeout\] no answer from .* in time\n  hint: .*OTLP_TIMEOUT"):
        check(receiver.endpoint, "--timeout", "0.3")


@pytest.mark.parametrize("status, hint", [(503, "unavailable"), (400, "could not decode"), (401, "credentials"),
                                          (404, "/v1/traces")])
def test_http_status_is_named_with_a_hint(receiver, status, hint):
    receiver.fault = Fault(status=status)
    with pytest.raises(CommandError, match=rf"\[http\] HTTP {status} .*\n  hint: .*{hint}"):
        check(receiver.endpoint)
    assert receiver.requests == 1, "tracing_check sends once, it does not retry"


def test_exporter_none_fails_with_advice():
    with pytest.raises(CommandError, match="EXPORTER is 'none'"):
        check("http://localhost:4318", EXPORTER="none")


def test_bad_endpoint_scheme_fails_with_advice():
    with pytest.raises(CommandError, match=r"\[config\] .*http:// or https://"):
        check("ftp://collector:4318")


def test_grpc_success_and_refused():
    with grpc_receiver() as (received, endpoint):
        output = check(endpoint, protocol="grpc")
        assert "ok" in output and received.wait_for(lambda spans: spans, timeout=5)
    with pytest.raises(CommandError, match=r"\[refused\]"):
        check(dead_endpoint(), protocol="grpc")


@pytest.mark.parametrize("missing", ["celery", "kombu"])
def test_worker_check_without_celery_installed_is_a_command_error(receiver, monkeypatch, missing):
    """Installed without the celery extra: advice, not a ModuleNotFoundError traceback."""
    monkeypatch.setitem(sys.modules, missing, None)  # `import celery` raises ImportError
    with pytest.raises(CommandError, match=r"--worker needs Celery.*django-tracing-app\[celery\]"):
        check(receiver.endpoint, "--worker", "--timeout", "1")
