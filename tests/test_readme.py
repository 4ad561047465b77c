"""The README's settings table is the one tracing_app/conf/keys.py declares; its commands are real."""

from __future__ import annotations

import re
from pathlib import Path

from tracing_app.conf import KEYS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def settings_table() -> str:
    """The table as conf.KEYS declares it. When this test fails, paste its output into README.md."""
    rows = ["| key | default | environment variable | meaning |", "|---|---|---|---|"]
    for key in KEYS:
        default = key.default if not isinstance(key.default, tuple) else list(key.default)
        env = ", ".join(f"`{var}`" for var in key.env) or "–"
        rows.append(f"| `{key.name}` | `{default!r}` | {env} | {key.doc.replace('|', '/')} |")
    return "\n".join(rows)


def test_settings_table_matches_conf_keys():
    assert START in README and END in README
    documented = README.split(START)[1].split(END)[0].strip()
    assert documented == settings_table(), "README settings table is stale: run `python -m tests.test_readme`"


def test_first_commands_are_the_stack_the_tests_and_the_embedded_demo():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands[:3] == ["docker compose up --build", "make test", "make demo"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: .*\n\t\$\(PY\) -m project\.demo( \$\(if \$\(ASGI\),--asgi\))?$", makefile, re.M)


def test_troubleshooting_and_recipes_are_there():
    for heading in ("## Troubleshooting", "### gunicorn", "### Celery prefork", "### Kubernetes",
                    "### Tempo or an OpenTelemetry Collector instead of Jaeger", "## tracing_tail"):
        assert heading in README, heading


def write_settings_table() -> None:
    """``python -m tests.test_readme`` rewrites the README's table from conf.KEYS."""
    before, rest = README.split(START)
    after = rest.split(END)[1]
    (ROOT / "README.md").write_text(f"{before}{START}\n{settings_table()}\n{END}{after}")


if __name__ == "__main__":
    write_settings_table()


def test_no_document_carries_merge_conflict_markers():
    # a merge once committed BENCHMARKS.md with both sides of a conflict still marked
    marker = re.compile(r"^(<{7} |={7}$|>{7} )", re.M)
    for path in sorted(ROOT.glob("*.md")) + sorted((ROOT / "docs").rglob("*.md")):
        assert not marker.search(path.read_text()), f"{path.name} has unresolved merge conflict markers"
