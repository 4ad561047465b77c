"""gunicorn server hooks. In your ``gunicorn.conf.py``::

    from tracing_app.integrations.gunicorn import post_worker_init, worker_exit  # noqa: F401

``worker_exit`` flushes a worker's spans when it stops (``--max-requests``
recycling, SIGTERM/SIGHUP to the arbiter, a timeout restart), bounded by
``SHUTDOWN_TIMEOUT``. gunicorn's sync and gthread workers exit through
``sys.exit`` so tracing_app's atexit hook flushes too; the hook makes it
explicit and also covers workers that leave with ``os._exit``.
``post_worker_init`` warns once if the worker, after loading Django, has no
working span exporter. With ``--preload`` the provider is built in the arbiter
and every worker gets its own export thread and connection after the fork.
"""

from __future__ import annotations

import logging
from typing import Any

from tracing_app.pipeline import provider
from tracing_app.safety import guarded

logger = logging.getLogger("tracing_app")


def post_worker_init(worker: Any) -> None:
    with guarded("checking the exporter of a gunicorn worker"):
        problem = provider.exporter_problem()
        if problem is not None:
            logger.warning("tracing_app: gunicorn worker %s has no working span exporter, its request spans will "
                           "be lost: %s", getattr(worker, "pid", "?"), problem)


def worker_exit(server: Any, worker: Any) -> None:
    with guarded("flushing spans at gunicorn worker exit"):
        provider.shutdown()
