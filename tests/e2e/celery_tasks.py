"""Tasks that only the end-to-end Celery tests use, imported by their worker (worker_settings)."""

from __future__ import annotations

import time

from celery import chord, shared_task
from celery.exceptions import Reject


@shared_task(name="e2e.noop")
def noop(*args: object) -> None:
    return None


@shared_task(name="e2e.add", ignore_result=False)
def add(x: int, y: int = 0) -> int:
    return x + y


@shared_task(name="e2e.total", ignore_result=False)
def total(numbers: list[int]) -> int:
    return sum(numbers)


@shared_task(name="e2e.flaky", bind=True, max_retries=3)
def flaky(self, fail_times: int) -> int:
    """Fails its first ``fail_times`` attempts."""
    if self.request.retries < fail_times:
        raise self.retry(exc=RuntimeError(f"attempt {self.request.retries + 1} failed"), countdown=0)
    return self.request.retries


@shared_task(name="e2e.fail")
def fail() -> None:
    raise ValueError("the order is gone")


@shared_task(name="e2e.reject")
def reject() -> None:
    raise Reject("cannot be processed", requeue=False)


@shared_task(name="e2e.publish_child")
def publish_child() -> None:
    noop.delay("from a task")


@shared_task(name="e2e.start_chord")
def start_chord(count: int) -> None:
    chord([add.s(i, i) for i in range(count)])(total.s())


@shared_task(name="e2e.echo_headers", bind=True, ignore_result=False)
def echo_headers(self) -> dict:
    return dict(self.request.headers or {})


@shared_task(name="e2e.fan_out_report", ignore_result=False)
def fan_out_report(seconds: float = 0.0) -> str:
    time.sleep(seconds)
    return "done"

