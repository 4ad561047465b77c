"""Write the install files of one tested version set (requirements/versions/NAME.txt).

Usage: python .ci/version_set.py requirements/versions/oldest.txt OUT_DIR

OUT_DIR/requirements.txt: what to install, by name (the library's runtime and the
demo's, as requirements/base.txt lists them, plus the test runner).
OUT_DIR/constraints.txt: the set's pins, plus every main pin (requirements/*.txt) they
do not replace. A pin of the same family as one the set pins is dropped too
(opentelemetry-* with protobuf and wrapt; Celery's amqp, billiard, vine, click, dateutil), so pip resolves those
for the set's releases instead of failing on the main set's.
Prints the Python version the set runs on (its "# python:" line).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_RUNNER = ("pytest", "pytest-django", "pytest-timeout", "setuptools")  # setuptools: the quick start's wheel
# Resolved again for the set's releases when the set pins any of these families' leaders.
FAMILIES = {
    "opentelemetry-": ("opentelemetry-", "protobuf", "googleapis-common-protos", "wrapt", "importlib-metadata"),
    "celery": ("amqp", "billiard", "vine", "click", "python-dateutil", "tzlocal", "tzdata"),
    "django": ("asgiref", "sqlparse"),
}


def pins(path: Path) -> dict[str, str]:
    """{normalized name: "name==version"} of a requirements file's pinned lines."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            requirement = re.sub(r"\[.*?\]", "", line)  # pip refuses extras in constraints
            found[normalize(requirement.split("==")[0])] = requirement
    return found


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def main(set_file: Path, out: Path) -> None:
    chosen = pins(set_file)
    dropped = [prefix for leader, family in FAMILIES.items() if any(n.startswith(leader) for n in chosen)
               for prefix in family]
    constraints = dict(chosen)
    for name in ("base.txt", "dev.txt", "constraints.txt"):
        for key, line in pins(ROOT / "requirements" / name).items():
            if key not in chosen and not key.startswith(tuple(dropped)):
                constraints.setdefault(key, line)
    base = (ROOT / "requirements" / "base.txt").read_text().splitlines()
    # "# without: a b": libraries with no release for the set (optional ones: their integration is skipped).
    without = {normalize(n) for m in re.finditer(r"^# without: *(.+)$", set_file.read_text(), re.M)
               for n in m[1].split()}
    names = [line.split("#")[0].strip().split("==")[0] for line in base
             if line.split("#")[0].strip() and not line.startswith("-")]
    names = [name for name in names if normalize(re.sub(r"\[.*?\]", "", name)) not in without]
    out.mkdir(parents=True, exist_ok=True)
    (out / "constraints.txt").write_text("\n".join(sorted(constraints.values())) + "\n")
    (out / "requirements.txt").write_text("\n".join([*names, *TEST_RUNNER]) + "\n")
    print(re.search(r"^# python: *(\S+)", set_file.read_text(), re.M)[1])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
