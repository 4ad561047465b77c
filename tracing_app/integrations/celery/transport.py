"""Which ``messaging.system`` a Celery message travels on: the broker's transport
(``rabbitmq`` for AMQP, ``redis``, ...; ``tracing_app.context.carriers.messaging_system``),
not "celery", which names the framework and not the system holding the messages."""

from __future__ import annotations

import weakref
from typing import Any

from tracing_app.context.carriers import RABBITMQ, messaging_system
from tracing_app.safety import guarded

_of_app: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def system_of_app(app: Any) -> str:
    """The messaging system of ``app``'s broker, worked out once per app (no connection is opened)."""
    if app is None:
        return RABBITMQ
    app = getattr(app, "_get_current_object", lambda: app)()  # celery.current_app is a proxy
    try:
        return _of_app[app]
    except (KeyError, TypeError):
        pass
    system = RABBITMQ
    with guarded("finding the messaging system of a Celery app's broker"):
        connection = app.connection_for_read()
        try:
            system = messaging_system(connection)
        finally:
            connection.release()
    try:
        _of_app[app] = system
    except TypeError:  # not weakly referenceable: worked out again next time
        pass
    return system
