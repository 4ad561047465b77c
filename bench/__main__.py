"""``python -m bench``: the four benchmarks in turn; each rewrites its section of BENCHMARKS.md."""

import sys

from . import asgi_overhead, request_overhead, span_pipeline, task_overhead

for benchmark in (request_overhead, asgi_overhead, task_overhead, span_pipeline):
    benchmark.main(sys.argv[1:2] if sys.argv[1:2] == ["--no-write"] else [])
