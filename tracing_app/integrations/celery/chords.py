"""Chord bookkeeping: which header tasks' spans the chord callback waited for, kept
in the ``ChordHeaderRun`` table so that the callback can link to all of them."""

from __future__ import annotations

import datetime

from tracing_app.context.suppression import untraced

MAX_CHORD_LINKS = 128
CHORD_RUN_MAX_AGE = datetime.timedelta(days=1)


def record_chord_header_run(group_id: str, task_id: str, traceparent: str) -> None:
    from tracing_app.models import ChordHeaderRun

    with untraced():
        ChordHeaderRun.objects.create(group_id=group_id, task_id=task_id, traceparent=traceparent)


def pop_chord_header_runs(group_id: str) -> list[str]:
    """The header spans of chord ``group_id`` (each task once, its last attempt), forgotten afterwards."""
    from django.utils import timezone

    from tracing_app.models import ChordHeaderRun

    with untraced():
        runs = ChordHeaderRun.objects.filter(group_id=group_id)
        rows = list(runs.order_by("id").values_list("task_id", "traceparent"))
        runs.delete()
        # Chords whose callback never ran (a header failed) leave rows behind: forget them after a day.
        ChordHeaderRun.objects.filter(created_at__lt=timezone.now() - CHORD_RUN_MAX_AGE).delete()
    latest = dict(rows)  # a retried header task: its last attempt wins
    return list(latest.values())[:MAX_CHORD_LINKS]
