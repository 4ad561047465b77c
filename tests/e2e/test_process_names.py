"""A project that sets only SERVICE_NAME sees its web, Celery worker, beat and management
commands as distinct services at a real OTLP receiver (pipeline/resource.py's rule), with
no OTEL_SERVICE_NAME in any process; OTEL_SERVICE_NAME still wins for its process."""

import sys

SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.e2e.process_names_settings"}

def test_worker_beat_command_and_web_are_named_by_their_role(stack, otlp, tmp_path):
    stack.start_worker(service_name=None, **SETTINGS)
    beat = stack.start("beat", [sys.executable, "-m", "celery", "-A", "project", "beat", "-l", "info",
                                "-s", str(tmp_path / "schedule")], stack.env(None, **SETTINGS))
    # beat publishes e2e.sleep every half second, the worker runs it: both ends of one trace.
    spans = otlp.wait_for(lambda spans: any(s.kind == "PRODUCER" for s in spans)
                          and any(s.kind == "CONSUMER" for s in spans))
    beat.stop()
    producer = next(s for s in spans if s.kind == "PRODUCER")
    consumer = next(s for s in spans if s.kind == "CONSUMER")
    assert (producer.service, producer.resource["tracing_app.process.role"]) == ("e2e-shop-beat", "beat")
    assert (consumer.service, consumer.resource["tracing_app.process.role"]) == ("e2e-shop-worker", "worker")

    otlp.clear()
    command = stack.manage("migrate", "--noinput", service_name=None, **SETTINGS)
    assert command.returncode == 0, command.stdout + command.stderr
    spans = otlp.wait_for(lambda spans: len(spans) > 0)
    assert {(s.service, s.resource["tracing_app.process.role"]) for s in spans} == {("e2e-shop-command", "command")}

    otlp.clear()
    web = stack.start_web(service_name=None, **SETTINGS)
    status, _, _ = web.request("GET", "/no-such-page/")
    assert status == 404
    spans = otlp.wait_for(lambda spans: any(s.kind == "SERVER" for s in spans))
    server = next(s for s in spans if s.kind == "SERVER")
    assert (server.service, server.resource["tracing_app.process.role"]) == ("e2e-shop", "web")

def test_otel_service_name_still_names_the_process(stack, otlp):
    command = stack.manage("migrate", "--noinput", service_name="shop-deploy", **SETTINGS)
    assert command.returncode == 0, command.stdout + command.stderr
    spans = otlp.wait_for(lambda spans: len(spans) > 0)
    assert {(s.service, s.resource["tracing_app.process.role"]) for s in spans} == {("shop-deploy", "command")}
