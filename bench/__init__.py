"""Overhead benchmarks: what tracing costs a request, a task and the exporting process.

One command each, run from the repository root (see README "Benchmarks")::

    python -m bench.request_overhead   # gunicorn + PostgreSQL + RabbitMQ, five modes interleaved
    python -m bench.asgi_overhead      # the same under uvicorn workers, at saturation and closed loop
    python -m bench.task_overhead      # tasks/s through a real Celery worker
    python -m bench.span_pipeline      # spans/s one process can export without drops
    python -m bench                    # all four

Each prints its table and rewrites its own section of BENCHMARKS.md. Speed
targets are ratios against a baseline measured in the same run, never absolute
times: this machine is shared and has two cores.
"""
