"""The untraced baseline (``bench.settings_untraced``) with the soak benchmark's URLs."""

from bench.settings_untraced import *  # noqa: F403

ROOT_URLCONF = "bench.soak_urls"
