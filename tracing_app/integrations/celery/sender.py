"""A publish that raises still ends its PRODUCER span; the span knows the transport.

Celery sends ``before_task_publish`` (our span starts) and ``after_task_publish``
(it ends) around ``producer.publish`` in the function ``app.amqp.send_task_message``,
but sends nothing when that publish raises (a refused connection with
``retry=False``, retries exhausted, an encoding error): the span would stay open
and never be exported. Celery has no public hook for a failed publish, so this one
patch wraps the sender each app builds (``AMQP._create_task_sender``, called once
per app) and reports the exception while it propagates, at the moment of the
failure. The original is kept as ``ORIGINAL`` and restored by ``uninstall()``; a
sender built while installed keeps its wrapper, which does nothing once the
integration is uninstalled (no span is pending then). The wrapper also keeps the
producer of the publish under way (``current_producer``), so that the span's
``messaging.system`` is the transport the message really goes through.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from celery.app.amqp import AMQP

from tracing_app.safety import guarded

PublishFailed = Callable[[dict, BaseException], None]
_original: Callable[[AMQP], Callable[..., Any]] | None = None
# The kombu Producer of the publish under way in this context: before_task_publish does
# not say which connection (hence which transport) the message goes through.
_producer: contextvars.ContextVar[Any] = contextvars.ContextVar("tracing_app_celery_producer", default=None)


def current_producer() -> Any:
    """The kombu Producer publishing a task in this context, or None (a sender built before install)."""
    return _producer.get()


def install(on_failure: PublishFailed) -> None:
    """Make senders call ``on_failure(headers, exception)`` when a task publish raises."""
    global _original
    if _original is not None:
        return
    original = _original = AMQP._create_task_sender

    def _create_task_sender(self: AMQP) -> Callable[..., Any]:
        send = original(self)

        def send_task_message(producer: Any, name: str, message: Any, *args: Any, **kwargs: Any) -> Any:
            token = _producer.set(producer)
            try:
                return send(producer, name, message, *args, **kwargs)
            except BaseException as exc:
                # message[0] is the headers dict before_task_publish received.
                with guarded("ending the span of a failed Celery publish"):
                    on_failure(message[0], exc)
                raise
            finally:
                _producer.reset(token)

        return send_task_message

    AMQP._create_task_sender = _create_task_sender


def uninstall() -> None:
    global _original
    if _original is not None:
        AMQP._create_task_sender = _original
        _original = None
