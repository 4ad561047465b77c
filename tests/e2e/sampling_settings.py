"""The demo's settings with a sampling rule, for the web process of the sampling e2e test."""

from project.settings import *  # noqa: F403
from project.settings import TRACING

TRACING = {
    **TRACING,
    "SAMPLE_RATIO": 1.0,
    "SAMPLING_RULES": [
        {"path": r"^/api/orders/$", "method": "POST", "ratio": 0.5},
        {"route_name": "order-detail", "ratio": 0.0},
    ],
}
