"""The demo's settings (traced) with the soak benchmark's URLs."""

from project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.soak_urls"
