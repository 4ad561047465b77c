"""The version ranges pyproject.toml claims are the ones CI tests: the oldest set pins each
range's lower bound, the newest set stays under each upper bound, the span class's
verified SDK range is the SDK's range, and the integrations' minimums are the extras'."""

from __future__ import annotations

import pathlib
import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tracing_app.integrations import REGISTRY
from tracing_app.pipeline.fast_spans import VERIFIED_SDK

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CLAIMED = {Requirement(r).name.lower(): Requirement(r).specifier
           for r in [*PROJECT["dependencies"], *sum(PROJECT["optional-dependencies"].values(), [])]
           if not r.startswith("django-tracing-app")}
TESTED = ("django", "celery", "kombu", "opentelemetry-api", "opentelemetry-sdk", "opentelemetry-proto",
          "opentelemetry-exporter-otlp-proto-http",
          "opentelemetry-instrumentation-requests")


def pinned(name: str) -> dict[str, Version]:
    text = (ROOT / "requirements" / "versions" / f"{name}.txt").read_text()
    return {m[1].lower(): Version(m[2]) for m in re.finditer(r"^([\w.-]+)==(\S+)", text, re.M)}


def bounds(name: str) -> tuple[Version, Version]:
    lower = [Version(s.version) for s in CLAIMED[name] if s.operator == ">="]
    upper = [Version(s.version) for s in CLAIMED[name] if s.operator == "<"]
    assert len(lower) == len(upper) == 1, f"{name}: claim a tested range >=oldest,<first-untested ({CLAIMED[name]})"
    return lower[0], upper[0]


@pytest.mark.parametrize("name", TESTED)
def test_each_claimed_range_is_tested_at_both_ends(name):
    lower, upper = bounds(name)
    oldest, newest = pinned("oldest")[name], pinned("newest")[name]
    assert oldest == lower, "the oldest set pins the range's lower bound"
    assert oldest <= newest < upper
    assert CLAIMED[name].contains(oldest, prereleases=True) and CLAIMED[name].contains(newest, prereleases=True)


def test_the_span_class_is_verified_up_to_the_sdks_claimed_upper_bound_and_the_oldest_set_runs_without_it():
    verified_from, verified_until = map(Version, VERIFIED_SDK)
    lower, upper = bounds("opentelemetry-sdk")
    assert verified_until == upper
    # Both paths are tested: the newest set on our span class, the oldest on the SDK's (the fallback).
    assert pinned("oldest")["opentelemetry-sdk"] < verified_from <= pinned("newest")["opentelemetry-sdk"]


def test_the_integrations_minimums_are_the_claimed_ones():
    for entry in REGISTRY.values():
        for requirement in entry.requires:
            claim = CLAIMED.get(requirement.distribution.lower())
            if claim is not None:
                assert Version(requirement.minimum) in [Version(s.version) for s in claim if s.operator == ">="], (
                    requirement, claim)


def test_the_integrations_upper_bounds_are_the_claimed_ones():
    for entry in REGISTRY.values():
        for requirement in entry.requires:
            claim = CLAIMED.get(requirement.distribution.lower())
            uppers = [Version(s.version) for s in claim or () if s.operator == "<"]
            expected = [Version(requirement.below)] if requirement.below else []
            assert expected == uppers, (requirement, claim)


def test_ci_runs_the_version_sets_after_the_main_suite():
    run = (ROOT / ".ci" / "run").read_text()
    assert run.index("make test") < run.index(".ci/versions.sh")
    assert {p.stem for p in (ROOT / "requirements" / "versions").glob("*.txt")} == {"oldest", "newest"}
