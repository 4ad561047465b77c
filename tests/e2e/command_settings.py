"""The demo's settings with UNTRACED_COMMANDS replaced, for e2e tests whose commands must be traced."""

from project.settings import *  # noqa: F403
from project.settings import TRACING

TRACING = {**TRACING, "UNTRACED_COMMANDS": ["migrate"]}
