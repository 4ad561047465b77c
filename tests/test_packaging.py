"""The package as a user gets it: a wheel built from the repository, installed into a
fresh virtualenv (no system site-packages) and imported there."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import importlib.metadata as metadata, importlib.resources as resources, importlib.util
import tracing_app, tracing_app.testing, tracing_app.devtools.waterfall
from tracing_app.management.commands import tracing_tail
dist = metadata.distribution("django-tracing-app")
assert tracing_app.__version__ == dist.version, (tracing_app.__version__, dist.version)
assert resources.files("tracing_app").joinpath("py.typed").is_file()
assert importlib.util.find_spec("project") is None and importlib.util.find_spec("apps") is None
assert {"celery", "redis", "grpc"} <= set(dist.metadata.get_all("Provides-Extra"))
[plugin] = [e for e in dist.entry_points if e.group == "pytest11"]
assert plugin.value == "tracing_app.testing"
import celery  # the [celery] extra came along
import redis  # and the [redis] one
print("ok", dist.version)
"""


def constraints(tmp_path: Path) -> Path:
    """The repository's pins as one constraints file (pip refuses extras in constraints)."""
    lines = []
    for name in ("base.txt", "constraints.txt"):
        for line in (ROOT / "requirements" / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                lines.append(re.sub(r"\[.*?\]", "", line))
    path = tmp_path / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_wheel_installs_into_a_fresh_virtualenv_with_its_extras_and_without_the_demo(tmp_path):
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "tracing_app", source / "tracing_app", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source],
                   check=True, capture_output=True, timeout=300)
    [wheel] = (tmp_path / "dist").glob("django_tracing_app-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tracing_app/py.typed" in names
    assert not [n for n in names if n.startswith(("project/", "apps/", "tests/"))], names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-c", constraints(tmp_path),
         f"{wheel}[celery,redis]"], capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    result = subprocess.run([python, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("ok "), result.stdout + result.stderr


def test_the_demos_gunicorn_config_installs_tracing_apps_hooks():
    # gunicorn reads its hooks as names of the config module (as README's quick start says).
    import runpy

    from tracing_app.integrations import gunicorn

    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert config["post_worker_init"] is gunicorn.post_worker_init
    assert config["worker_exit"] is gunicorn.worker_exit
