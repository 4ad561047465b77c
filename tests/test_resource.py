"""Every process gets a distinguishable service.name from SERVICE_NAME alone (pipeline/resource.py)."""

import pytest

from tracing_app.conf.config import resolve
from tracing_app.pipeline import provider, resource
from tracing_app.testing import capture_spans


@pytest.fixture(autouse=True)
def _forget_role():
    resource.reset_process_role()
    yield
    resource.reset_process_role()


@pytest.mark.parametrize(("argv", "role"), [
    (["/venv/bin/celery", "-A", "project", "worker", "-l", "info"], "worker"),
    (["/venv/bin/celery", "--app=project", "worker"], "worker"),
    (["/usr/lib/python3/site-packages/celery/__main__.py", "-A", "worker", "beat"], "beat"),  # an app named worker
    (["/venv/bin/celery", "-b", "amqp://", "beat", "--schedule", "/tmp/s"], "beat"),
    (["/venv/bin/celery", "-A", "project", "inspect", "active"], "command"),
    (["manage.py", "migrate", "--noinput"], "command"),
    (["/srv/app/manage.py", "relay_outbox"], "command"),
    (["/venv/bin/django-admin", "shell"], "command"),
    (["/usr/lib/python3/site-packages/django/__main__.py", "check"], "command"),
    (["manage.py", "runserver", "0:8000"], "web"),
    (["manage.py", "testserver", "fixture.json"], "web"),
    (["/venv/bin/gunicorn", "project.wsgi"], "web"),
    (["/venv/bin/uwsgi", "--module", "project.wsgi"], "web"),
    ([], "web"),
])
def test_the_role_is_read_from_the_command_line(argv, role):
    assert resource.detect_role(argv) == role


def test_each_role_is_named_after_service_name_by_default():
    config = resolve({"SERVICE_NAME": "shop"}, {})
    names = {role: resource.service_name(config, role) for role in resource.ROLES}
    assert names == {"web": "shop", "worker": "shop-worker", "beat": "shop-beat", "command": "shop-command"}


def test_service_names_names_a_role_outright():
    config = resolve({"SERVICE_NAME": "shop", "SERVICE_NAMES": {"worker": "orders-worker"}}, {})
    assert resource.service_name(config, "worker") == "orders-worker"
    assert resource.service_name(config, "beat") == "shop-beat"
    assert resource.service_name(config, "web") == "shop"


@pytest.mark.parametrize("environ", [
    {"OTEL_SERVICE_NAME": "billing"},
    {"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing,team=core"},
    {"OTEL_SERVICE_NAME": "billing", "OTEL_RESOURCE_ATTRIBUTES": "service.name=other"},
])
def test_a_name_given_to_the_process_wins_for_every_role(environ):
    config = resolve({"SERVICE_NAME": "shop", "SERVICE_NAMES": {"worker": "shop-w"}}, environ)
    assert {resource.service_name(config, role) for role in resource.ROLES} == {"billing"}


@pytest.mark.parametrize("value", [{"web": "x"}, {"workers": "x"}, {"worker": ""}, ["worker"]])
def test_bad_service_names_are_e003(value):
    config = resolve({"SERVICE_NAMES": value}, {})
    assert [p.check_id for p in config.problems] == ["tracing_app.E003"]
    assert config.service_names == {}


def test_the_resource_carries_the_role():
    built = resource.build_resource(resolve({"SERVICE_NAME": "shop", "ENVIRONMENT": "prod"}, {}), "beat")
    assert built.attributes["service.name"] == "shop-beat"
    assert built.attributes["tracing_app.process.role"] == "beat"
    assert built.attributes["deployment.environment.name"] == "prod"


def test_setting_the_role_renames_a_provider_already_built():
    with capture_spans() as spans:
        sdk_tracer = provider.get_provider().get_tracer("users.module")  # made before the role is known
        provider.get_tracer().start_span("before").end()
        resource.set_process_role("worker")
        provider.get_tracer().start_span("ours").end()
        sdk_tracer.start_span("theirs").end()
    by_name = {record.name: record.resource for record in spans.records()}
    assert by_name["before"]["service.name"] == "shop-web"
    assert by_name["before"]["tracing_app.process.role"] == "web"
    for name in ("ours", "theirs"):
        assert by_name[name]["service.name"] == "shop-worker", name  # SERVICE_NAMES in the demo settings
        assert by_name[name]["tracing_app.process.role"] == "worker", name


def test_an_unknown_role_is_refused():
    with pytest.raises(ValueError, match="unknown process role"):
        resource.set_process_role("cron")


def test_celery_says_worker_and_beat_when_they_start():
    from celery import signals

    from tracing_app.integrations.celery import lifecycle

    # Our receivers are connected (sending the signals here would also run Celery's Django
    # fix-up, which closes this test process's database connections).
    for signal, uid in ((signals.worker_init, "worker_init"), (signals.beat_init, "beat_init")):
        assert any(key[0] == f"tracing_app.lifecycle.{uid}" for key, _ in signal.receivers), uid
    assert resource.process_role() == "web"  # pytest's command line says nothing
    lifecycle._worker_starting(sender=None)
    assert resource.process_role() == "worker"
    lifecycle._beat_starting(sender=None)
    assert resource.process_role() == "beat"
