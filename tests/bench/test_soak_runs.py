"""Smoke test: the soak benchmark runs end to end for a few seconds (real gunicorn, PostgreSQL,
RabbitMQ, a flapping receiver) and writes its section. No memory or timing target is asserted
here; the accounting identity is: it must hold in any run, however short."""

import re

import pytest

from bench import soak

from .test_benchmarks_run import generated

pytestmark = pytest.mark.services


def test_soak_runs_and_every_traced_process_accounts_for_its_spans(tmp_path):
    output = tmp_path / "BENCHMARKS.md"
    soak.main(["--seconds", "8", "--warmup", "2", "--output", str(output)])
    section = generated(output, soak.SECTION)
    rows = re.findall(r"^\| \d+ \| \d+ = \d+ \+ .*$", section, re.M)
    assert len(rows) == 2, section  # one per traced gunicorn worker
    assert all("| holds |" in row for row in rows), section
    assert "schedule: healthy at 0s, down at" in section and "413 at" in section
    assert "failed requests: traced = untraced" in section
