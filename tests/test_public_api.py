"""The public API is one list (``tracing_app.__all__``), and every path the docs tell a
user to import or write in settings imports: README.md and docs/*.md are read here,
so a moved name fails this test instead of a user's project."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import tracing_app
from tracing_app import semconv

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Check ids (tracing_app.E001) and span attribute names (every one is in semconv) are not import paths.
NOT_PATHS = re.compile(r"^tracing_app\.([EW]\d{3}|link|check)$")
ATTRIBUTE_NAMES = {value for name, value in vars(semconv).items() if name.isupper() and isinstance(value, str)}
IMPORT = re.compile(r"^\s*from (tracing_app[\w.]*) import ([\w, ]+)", re.MULTILINE)
DOTTED = re.compile(r"\btracing_app(?:\.\w+)+")


def resolve(path: str) -> object:
    """Import the longest importable module prefix of ``path``, then getattr the rest."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(path)


def documented_paths() -> list[str]:
    paths = set()
    for doc in DOCS:
        text = doc.read_text()
        for module, names in IMPORT.findall(text):
            paths.update(f"{module}.{name.strip()}" for name in names.split(",") if name.strip())
        paths.update(p for p in DOTTED.findall(text) if not NOT_PATHS.match(p) and p not in ATTRIBUTE_NAMES)
    return sorted(paths)


def test_every_public_name_resolves():
    for name in tracing_app.__all__:
        assert getattr(tracing_app, name) is not None, name


def test_the_docs_name_paths():
    # Guards the guard: the scan finds the paths the README is known to use.
    assert {"tracing_app.TracingMiddleware", "tracing_app.testing.assert_trace",
            "tracing_app.integrations.gunicorn.post_worker_init"} <= set(documented_paths())


@pytest.mark.parametrize("path", documented_paths())
def test_every_documented_path_imports(path):
    assert resolve(path) is not None


def test_a_path_that_does_not_import_fails(tmp_path):
    with pytest.raises((ImportError, AttributeError)):
        resolve("tracing_app.middleware.TracingMiddleware")  # the path before 0.1.0's layout


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        tracing_app.no_such_name  # noqa: B018
