"""``tracing_settings(**keys)``: run a block with TRACING keys changed and spans captured.

The integrations compile their settings at install time, so changing TRACING
means reinstalling them; the previous state is restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.test import override_settings

from tests.settings import TRACING
from tracing_app.conf import get_config
from tracing_app.integrations import REGISTRY, get_integration
from tracing_app.testing import CapturedSpans, capture_spans


def _reinstall() -> None:
    config = get_config()
    for name in REGISTRY:
        integration = get_integration(name)
        integration.uninstall()
        if config.integration_enabled(name):
            integration.install(config)


@contextlib.contextmanager
def tracing_settings(**keys: Any) -> Iterator[CapturedSpans]:
    try:
        with override_settings(TRACING={**TRACING, **keys}):
            _reinstall()
            with capture_spans() as spans:
                yield spans
    finally:
        _reinstall()
