"""Optional libraries: what a feature needs, and whether this environment has it.

Some features need a library that is only an extra of the package (``celery``,
``grpc``, ``requests``): the integrations in ``tracing_app.integrations.REGISTRY``
and ``OTLP_PROTOCOL="grpc"``. They are declared here as ``Requirement`` values and
checked with ``unmet`` without importing the library, so a missing one can be
skipped (a feature on by default) or reported by the system check
``tracing_app.E006`` (a feature the user switched on) instead of raised.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import re


@dataclasses.dataclass(frozen=True)
class Requirement:
    """A library a feature needs: the module it imports, the distribution that
    provides it, and the releases we test it with: ``>= minimum`` and ``< below``
    (``""``: no upper bound). The same range as the package's metadata (pyproject.toml);
    older is unsupported (``unmet``), newer untested (``untested``)."""

    module: str
    distribution: str
    minimum: str
    below: str = ""


# OTLP_PROTOCOL="grpc": our gRPC transport (pipeline/export/otlp_grpc.py) needs grpcio (the
# `grpc` extra); the OTLP service definitions come with opentelemetry-proto, a base dependency.
OTLP_GRPC = (Requirement("grpc", "grpcio", "1.60"),)


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def release(version: str) -> tuple[int, ...]:
    """The leading release numbers of a version string: ``"0.50b0"`` -> ``(0, 50)``,
    ``"1.45.1"`` -> ``(1, 45, 1)``."""
    return tuple(int(part) for part in re.findall(r"\d+", re.split(r"[+abrcdev]", version, maxsplit=1)[0])[:3])


def _installed_version(requirement: Requirement) -> str | None:
    """The installed release of ``requirement``'s distribution; None when its module is
    importable but not installed as a distribution (vendored, a source tree): trusted."""
    try:
        return importlib.metadata.version(requirement.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def unmet(requirements: tuple[Requirement, ...]) -> str | None:
    """Why ``requirements`` are not met here ("'grpc' is not installed", "grpcio 1.50.0
    is older than 1.60"), or None when every library is there and recent enough."""
    for requirement in requirements:
        if not importable(requirement.module):
            return f"{requirement.module!r} is not installed"
        version = _installed_version(requirement)
        if version is not None and release(version) < release(requirement.minimum):
            return f"{requirement.distribution} {version} is older than {requirement.minimum}"
    return None


def untested(requirements: tuple[Requirement, ...]) -> str | None:
    """Which installed library is newer than its tested range ("Django 6.2.0 is newer
    than the tested releases (<6.2)"), or None."""
    for requirement in requirements:
        if not requirement.below or not importable(requirement.module):
            continue
        version = _installed_version(requirement)
        if version is not None and release(version) >= release(requirement.below):
            return f"{requirement.distribution} {version} is newer than the tested releases (<{requirement.below})"
    return None


def install_hint(requirements: tuple[Requirement, ...]) -> str:
    """``"grpcio>=1.60, celery>=5.3"``: what to pip install."""
    return ", ".join(f"{r.distribution}>={r.minimum}" for r in requirements)
