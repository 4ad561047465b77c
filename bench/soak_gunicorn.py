"""gunicorn settings for ``bench.soak``: two sync workers, never recycled; at exit each
worker flushes (tracing_app's hook), then writes its span accounting and its peak RSS
to ``$SOAK_STATS_DIR/<pid>.json``."""

import json
import os
from pathlib import Path

from tracing_app.integrations.gunicorn import post_worker_init  # noqa: F401

workers = 2
worker_class = "sync"
max_requests = 0
accesslog = None


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def worker_exit(server, worker):
    import tracing_app

    tracing_app.shutdown()
    stats = tracing_app.export_stats()
    record = {"pid": os.getpid(), "peak_rss_kib": peak_rss_kib(), "stats": None}
    if stats is not None:
        record["stats"] = {"ended": stats.ended, "exported": stats.exported, "pending": stats.pending,
                           "dropped": stats.dropped_by_reason, "failed_attempts": stats.failed_attempts}
    Path(os.environ["SOAK_STATS_DIR"], f"{os.getpid()}.json").write_text(json.dumps(record))
