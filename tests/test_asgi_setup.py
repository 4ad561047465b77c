"""Serving the demo under ASGI: project/asgi.py, gunicorn.conf.py's WEB_INTERFACE switch,
the compose file's web service, and the order-status stream (server-sent events)."""

import runpy
from pathlib import Path

import pytest
import yaml
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from apps.orders.models import Order
from tracing_app.testing import Expect, assert_trace

ROOT = Path(__file__).resolve().parents[1]


def gunicorn_config(monkeypatch, value=None):
    if value is None:
        monkeypatch.delenv("WEB_INTERFACE", raising=False)
    else:
        monkeypatch.setenv("WEB_INTERFACE", value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


@pytest.mark.parametrize(("value", "app", "worker"), [
    (None, "project.wsgi:application", "sync"),
    ("wsgi", "project.wsgi:application", "sync"),
    ("asgi", "project.asgi:application", "uvicorn_worker.UvicornWorker"),
    (" ASGI ", "project.asgi:application", "uvicorn_worker.UvicornWorker"),
])
def test_web_interface_picks_the_app_and_the_worker(monkeypatch, value, app, worker):
    config = gunicorn_config(monkeypatch, value)
    assert (config["wsgi_app"], config["worker_class"]) == (app, worker)
    module, _, name = app.partition(":")
    assert callable(getattr(__import__(module, fromlist=[name]), name))
    __import__(worker.rpartition(".")[0] or "gunicorn")


@pytest.mark.parametrize("value", ["uwsgi", "async"])
def test_an_unknown_web_interface_is_a_clear_error(monkeypatch, value):
    with pytest.raises(SystemExit, match="WEB_INTERFACE must be one of"):
        gunicorn_config(monkeypatch, value)


def test_compose_web_switches_with_web_interface():
    web = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]["web"]
    assert web["environment"]["WEB_INTERFACE"] == "${WEB_INTERFACE:-wsgi}"
    assert web["environment"]["DATABASE_URL"], "the shared app environment is kept"
    assert web["command"].endswith("exec gunicorn -c gunicorn.conf.py\""), "the app comes from gunicorn.conf.py"


@pytest.mark.django_db
def test_order_status_stream_sends_the_final_status_and_ends(captured_spans):
    order = Order.objects.create(sku="widget", quantity=1, status=Order.Status.RESERVED)
    captured_spans.clear()

    async def read():
        response = await AsyncClient().get(f"/api/orders/{order.pk}/events/")
        assert response["Content-Type"] == "text/event-stream"
        body = b"".join([chunk async for chunk in response])
        response.close()
        return body
    body = async_to_sync(read)().decode()
    assert body.startswith("event: status\ndata: ") and '"status": "reserved"' in body
    assert_trace(captured_spans, Expect("GET api/orders/<int:pk>/events/", kind="SERVER", error=False, children=[
        Expect("SELECT orders_order", kind="CLIENT"),
    ]))


@pytest.mark.django_db
def test_order_status_stream_of_an_unknown_order_is_404():
    assert Client().get("/api/orders/424242/events/").status_code == 404


def test_celery_builds_one_result_backend_per_process_not_per_request_thread():
    """Under ASGI each request runs in a new thread; a backend per thread cost a third of
    the worker's time (entry-point scans at each thread's first send_task)."""
    import threading

    from project.celery import app

    first = app.backend
    backends = []
    for _ in range(2):  # one request thread after the other
        thread = threading.Thread(target=lambda: backends.append(app.backend))
        thread.start()
        thread.join()
    assert backends == [first, first] and all(backend is first for backend in backends)
