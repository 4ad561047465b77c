"""The demo's settings with UNTRACED_COMMANDS replaced (tests/e2e/test_command_traces.py)."""

from project.settings import *  # noqa: F403
from project.settings import TRACING

TRACING = {**TRACING, "UNTRACED_COMMANDS": ["migrate"]}
