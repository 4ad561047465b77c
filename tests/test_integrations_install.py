"""Integrations never half-install: one failing install neither stops the others nor
leaves its own hooks connected, and a hook left in the host checks that its
integration is still installed each time it runs."""

from __future__ import annotations

import logging

import pytest
from celery import signals
from django.test import Client, override_settings

from tracing_app import integrations, lifecycle
from tracing_app.conf import get_config
from tracing_app.integrations.base import Integration
from tracing_app.integrations.celery.signals import integration as celery_integration
from tracing_app.testing import capture_spans


def celery_receivers() -> int:
    return sum(len(getattr(signals, name).receivers) for name, _ in celery_integration._SIGNALS)


@pytest.fixture
def reinstall_afterwards():
    yield
    integrations.install_enabled(get_config())


def test_one_integration_failing_to_install_does_not_stop_the_others(monkeypatch, caplog, reinstall_afterwards):
    lifecycle.stop()

    class Broken(Integration):
        name = "database"

        def _install(self, config):
            raise RuntimeError("boom")

        def _uninstall(self):
            pass

    real = integrations.get_integration
    monkeypatch.setattr(integrations, "get_integration",
                        lambda name: Broken() if name == "database" else real(name))
    with caplog.at_level(logging.ERROR, logger="tracing_app"):
        installed = lifecycle.start()
    assert "database" not in installed
    # The ones after it in REGISTRY order are installed too.
    assert {"django", "celery", "logging"} <= set(installed)
    assert "the database integration could not be installed" in caplog.text
    assert "runs untraced" not in caplog.text
    assert set(integrations.installed_integrations()) == set(installed)


def test_a_failed_install_rolls_back_what_it_connected(monkeypatch, reinstall_afterwards):
    celery_integration.uninstall()
    assert celery_receivers() == 0
    real_connect = signals.task_postrun.connect

    def failing_connect(*args, **kwargs):  # the fourth of its signals fails to connect
        raise RuntimeError("cannot connect")

    monkeypatch.setattr(signals.task_postrun, "connect", failing_connect)
    with pytest.raises(RuntimeError):
        celery_integration.install(get_config())
    monkeypatch.setattr(signals.task_postrun, "connect", real_connect)
    assert not celery_integration.installed
    assert celery_receivers() == 0  # the three connected before it were disconnected
    celery_integration.install(get_config())
    assert celery_receivers() == len(celery_integration._SIGNALS)


@override_settings(TRACING={"EXPORTER": "none"})
def test_the_middleware_makes_no_span_after_stop(reinstall_afterwards):
    client = Client()  # builds the middleware chain while tracing is installed
    with capture_spans() as spans:
        client.get("/api/orders/")
        assert spans.names() != []
        lifecycle.stop()
        before = len(spans.names())
        response = client.get("/api/orders/")
        assert response.status_code == 405
        assert len(spans.names()) == before


@pytest.mark.django_db
def test_a_query_never_fails_because_shaping_its_statement_failed(monkeypatch):
    from django.db import connection

    from tracing_app.integrations.database import queries

    monkeypatch.setattr(queries.STATEMENTS, "get", lambda *a, **k: 1 / 0)
    with capture_spans(raise_errors=False) as spans:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    assert spans.names() == []  # no span, and no failed query


def test_a_kombu_publish_never_fails_because_its_span_could_not_start(monkeypatch):
    from kombu import Connection, Exchange, Queue

    from tracing_app.integrations import kombu

    monkeypatch.setattr(kombu, "message_attributes", lambda *a, **k: 1 / 0)
    exchange = Exchange("tracing-app-guarded", type="direct")
    queue = Queue("tracing-app-guarded", exchange, routing_key="guarded")
    with capture_spans(raise_errors=False) as spans, Connection("memory://") as conn:
        queue(conn.default_channel).declare()
        with conn.Producer() as producer:
            kombu.publish(producer, {"n": 1}, exchange=exchange, routing_key="guarded", headers={"mine": "kept"})
        message = queue(conn.default_channel).get(no_ack=True)
        assert message.payload == {"n": 1} and message.headers["mine"] == "kept"
        with kombu.consuming(message) as span:
            assert not span.is_recording()
    assert spans.names() == []


def test_an_uninstalled_log_record_factory_adds_nothing(reinstall_afterwards):
    import logging

    from tracing_app.integrations.logs import integration as logs_integration

    ours, underneath = logging.getLogRecordFactory(), logs_integration._previous
    assert logs_integration.installed
    wrapper = lambda *a, **k: ours(*a, **k)  # noqa: E731  another library wraps ours afterwards
    logging.setLogRecordFactory(wrapper)
    try:
        logs_integration.uninstall()
        record = logging.getLogger("x").makeRecord("x", logging.INFO, __file__, 1, "m", (), None)
        assert not hasattr(record, "service_name")
    finally:
        logging.setLogRecordFactory(underneath)  # as before tracing_app; the fixture installs it again
