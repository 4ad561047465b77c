"""Peak memory of long statements, traced against untraced.

    python bench/statement_memory.py [--statements 300] [--database-url postgres://...]

Each run is a fresh process (Django set up with the demo's settings, exporter
``none``) that sends ``--statements`` statements of different lengths, the way
``filter(id__in=...)`` writes them (``IN (%s, %s, ...)``, 100 to 30,000 values),
each inside a sampled span, on PostgreSQL (``DATABASE_URL``, default the local
``postgres`` database). It prints the peak RSS of each run and the difference.
The statement texts alone are ~45 MB: before issue 17 the per-statement caches
kept up to 1024 of them, whatever their size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_one(traced: bool, statements: int) -> dict:
    import resource

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ["OTEL_TRACES_EXPORTER"] = "none"
    os.environ["OTEL_SDK_DISABLED"] = "false" if traced else "true"
    django.setup()
    from django.db import connection

    from tracing_app import get_tracer

    tracer = get_tracer()
    longest = 0
    for i in range(statements):
        values = 100 + (i * 29_900) // max(statements - 1, 1)  # 100 .. 30,000, all different
        sql = f'SELECT "oid" FROM "pg_class" WHERE "oid" IN ({", ".join(["%s"] * values)})'
        longest = max(longest, len(sql))
        with tracer.start_as_current_span("statement"), connection.cursor() as cursor:
            cursor.execute(sql, list(range(values)))
            cursor.fetchall()
    return {"traced": traced, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "longest_statement_chars": longest}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=300)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--child", choices=("traced", "untraced"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(run_one(args.child == "traced", args.statements)))
        return 0
    results = {}
    for mode in ("untraced", "traced"):
        env = {**os.environ, "DATABASE_URL": args.database_url}
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--statements", str(args.statements)],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
        if out.returncode != 0:
            print(out.stdout, out.stderr, file=sys.stderr)
            return 1
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    untraced, traced = results["untraced"]["peak_rss_mb"], results["traced"]["peak_rss_mb"]
    print(f"{args.statements} statements, up to {results['traced']['longest_statement_chars']:,} characters, "
          "exporter none")
    print(f"peak RSS untraced: {untraced:.1f} MB")
    print(f"peak RSS traced:   {traced:.1f} MB")
    print(f"difference:        {traced - untraced:+.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
