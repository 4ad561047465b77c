#!/usr/bin/env bash
# The ends of the version ranges pyproject.toml claims (README "Tested versions"): for each
# set in requirements/versions/ (all, or those named: `.ci/versions.sh oldest`), a
# virtualenv on the set's Python with the set's pins, then a subset of the tests: the span
# class, export, configuration and propagation in-process, and the quick start's
# end-to-end trace (gunicorn -> RabbitMQ -> Celery worker) in a fresh project installed
# with the same pins. Not the demo's order trace: its generated gRPC code needs protobuf 7,
# and opentelemetry-proto 1.30 (the oldest set) needs protobuf 5. Virtualenvs are kept in
# .venv-versions/ and rebuilt when a requirements file changes.
set -euo pipefail
cd "$(dirname "$0")/.."

TESTS=(
  tests/test_fast_spans.py tests/test_export.py tests/test_conf.py tests/test_propagation.py
  "tests/e2e/test_quickstart.py::test_the_quick_start_with_the_celery_extra_gives_one_trace_across_gunicorn_and_a_celery_worker"
)

interpreter() {  # a pyenv version ("3.13.0"), else python3.X on PATH
  PYENV_VERSION="$1" pyenv which python3 2>/dev/null || command -v "python${1%.*}" \
    || { echo "versions.sh: no Python $1 (pyenv install $1)" >&2; return 1; }
}

sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=($(ls requirements/versions | sed 's/\.txt$//'))
for name in "${sets[@]}"; do
  file="requirements/versions/$name.txt"
  venv=".venv-versions/$name"
  stamp="$venv/.installed-$(cat "$file" requirements/*.txt .ci/version_set.py | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    python="$(python3 .ci/version_set.py "$file" "$venv.files")"
    interpreter="$(interpreter "$python")"
    "$interpreter" -m venv "$venv"
    mv "$venv.files"/* "$venv/" && rmdir "$venv.files"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      -c "$venv/constraints.txt" -r "$venv/requirements.txt"
    touch "$stamp"
  fi
  echo "== versions set '$name': $("$venv/bin/python" -c 'import platform, importlib.metadata as m; print("Python", platform.python_version(), *(f"{d} {m.version(d)}" for d in ("django", "celery", "kombu", "opentelemetry-sdk")))')"
  # The quick start installs the user's project with this set's pins too.
  TRACING_CONSTRAINTS="$PWD/$venv/constraints.txt" "$venv/bin/python" -m pytest -p no:cacheprovider "${TESTS[@]}"
done
