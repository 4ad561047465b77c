"""``manage.py tracing_check``: show the tracing configuration and prove that export works.

1. Prints every TRACING value and where it came from (TRACING setting, an
   ``OTEL_*`` variable, or the default).
2. Sends one test span to the configured endpoint, with the same sender the
   exporter uses, and reports success or the exact failure (DNS, refused,
   timeout, HTTP status) with a hint. Exits non-zero on failure.
3. ``--worker``: sends the canary task through the broker inside a trace and
   waits for the worker's answer, which carries the trace id the worker ran it
   in: the same id proves that trace context crosses the broker. The canary
   expires when the wait ends (``--timeout``), so none is left in the queue to
   run whenever a worker next starts; the output says how long it waited.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tracing_app.conf import KEYS, TracingConfig, get_config
from tracing_app.pipeline import provider
from tracing_app.pipeline.export.otlp_http import HttpSender, Outcome, classify_error, sender_options

TEST_SPAN_NAME = "tracing_check"


class Command(BaseCommand):
    help = "Print the effective tracing configuration, send a test span, and optionally test a Celery worker."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--worker", action="store_true",
                            help="Also send a canary task and check that a worker runs it in the same trace.")
        parser.add_argument("--queue", default=None, help="Queue for the canary task (default: the task default).")
        parser.add_argument("--timeout", type=float, default=None,
                            help="Seconds to wait for the collector (default: OTLP_TIMEOUT) and, with --worker, "
                                 "30 for the worker.")

    def handle(self, *args: Any, **options: Any) -> None:
        config = get_config()
        self.print_config(config)
        if not config.enabled:
            raise CommandError("tracing is disabled (ENABLED=False or OTEL_SDK_DISABLED=true); nothing is exported")
        if config.exporter == "none":
            raise CommandError("EXPORTER is 'none': spans are not exported anywhere. Set it to 'otlp'.")
        if config.exporter == "otlp":
            timeout = options["timeout"] or config.otlp_timeout
            outcome = self.send_test_span(config, timeout)
            if not outcome.ok:
                hint = f"\n  hint: {outcome.hint}" if outcome.hint else ""
                raise CommandError(f"test span NOT sent to {config.traces_endpoint}: [{outcome.kind}] "
                                   f"{outcome.detail}{hint}")
            self.stdout.write(f"test span sent to {config.traces_endpoint}: ok")
        if options["worker"]:
            self.check_worker(options["queue"], options["timeout"] or 30.0)

    def print_config(self, config: TracingConfig) -> None:
        self.stdout.write("tracing_app configuration (value, then where it came from):")
        width = max(len(key.name) for key in KEYS)
        for key in KEYS:
            value = config.values[key.name]
            if key.name == "OTLP_HEADERS" and value:
                value = {name: "***" for name in value}  # credentials are not printed
            self.stdout.write(f"  {key.name:<{width}}  {value!r:<40}  {config.sources[key.name]}")
        self.stdout.write(f"  spans go to: {config.traces_endpoint} ({config.otlp_protocol})")
        for problem in config.problems:
            self.stdout.write(self.style.WARNING(f"  {problem.check_id}: {problem.message} {problem.hint}"))

    def send_test_span(self, config: TracingConfig, timeout: float) -> Outcome:
        from opentelemetry.sdk.trace import TracerProvider

        span = TracerProvider(resource=provider.build_resource(config), span_limits=provider.build_span_limits(config),
                              shutdown_on_exit=False).get_tracer(
            "tracing_app.check").start_span(TEST_SPAN_NAME, attributes={"tracing_app.check": True})
        span.end()
        if config.otlp_protocol == "grpc":
            return self.send_grpc(config, span, timeout)
        from tracing_app.pipeline.export.otlp_encoding import Encoder

        try:
            sender = HttpSender(config.traces_endpoint, dict(config.otlp_headers), **sender_options(config))
        except ValueError as exc:
            return Outcome(False, "config", str(exc))
        try:
            return sender.send(Encoder().encode([span]), timeout)
        finally:
            sender.close()

    def send_grpc(self, config: TracingConfig, span: Any, timeout: float) -> Outcome:
        # Reach the port first, so that DNS, refused and timeout are told apart as over HTTP
        # (gRPC reports all three as UNAVAILABLE); then the exporter's own transport.
        url = urllib.parse.urlsplit(config.traces_endpoint if "//" in config.traces_endpoint
                                    else f"//{config.traces_endpoint}")
        try:
            socket.create_connection((url.hostname, url.port or 4317), timeout=timeout).close()
        except OSError as exc:
            return classify_error(exc, config.traces_endpoint)
        from tracing_app.pipeline.export.otlp_encoding import Encoder
        from tracing_app.pipeline.export.otlp_grpc import GrpcTransport

        try:
            transport = GrpcTransport(config.traces_endpoint, dict(config.otlp_headers),
                                      **provider.grpc_options(config))
        except ValueError as exc:
            return Outcome(False, "config", str(exc))
        try:
            return transport.send(Encoder().encode([span]), timeout)
        finally:
            transport.close()

    def check_worker(self, queue: str | None, timeout: float) -> None:
        try:
            from celery import current_app
            from kombu import Exchange, Queue
        except ImportError as exc:  # installed without the celery extra
            raise CommandError(f"--worker needs Celery, which cannot be imported ({exc}); install it with "
                               "pip install 'django-tracing-app[celery]'") from None

        from tracing_app.tasks import CANARY_TASK

        reply_to = f"tracing_check.reply.{uuid.uuid4().hex}"
        reply_queue = Queue(reply_to, Exchange(""), routing_key=reply_to, durable=False, auto_delete=True)
        with current_app.connection_for_write() as connection:
            with connection.SimpleQueue(reply_queue, no_ack=True) as replies:
                with provider.get_tracer().start_as_current_span("tracing_check canary") as root:
                    trace_id = f"{root.get_span_context().trace_id:032x}"
                    options = {"queue": queue} if queue else {}
                    # expires: Celery gives the message a broker TTL (AMQP per-message
                    # expiration) and a header a worker honours, so a canary nobody ran
                    # in time is dropped by RabbitMQ, or discarded unrun by a later worker.
                    current_app.send_task(CANARY_TASK, kwargs={"reply_to": reply_to}, expires=timeout, **options)
                    sent = time.monotonic()
                self.stdout.write(f"canary task sent in trace {trace_id}; waiting up to {timeout:g}s for a worker")
                answer = self.wait_for_answer(replies, timeout)
                waited = time.monotonic() - sent
        if answer is None:
            raise CommandError(
                f"no worker ran the canary task within {timeout:g}s (waited {waited:.1f}s); the canary expires "
                f"now and will not run later\n  hint: is a worker consuming queue "
                f"{queue or current_app.conf.task_default_queue!r}, and does it know the task {CANARY_TASK!r} "
                "(tracing_app in INSTALLED_APPS and app.autodiscover_tasks())?")
        worker = f"{answer.get('hostname')} (pid {answer.get('pid')})"
        if answer.get("trace_id") != trace_id:
            raise CommandError(
                f"worker {worker} ran the canary in trace {answer.get('trace_id') or '(none)'}, not {trace_id}: "
                "trace context did not cross the broker\n  hint: enable tracing_app's Celery integration in the "
                "worker (tracing_app in INSTALLED_APPS, TRACING['INTEGRATIONS']['celery'] true)")
        self.stdout.write(f"worker {worker} ran the canary in trace {trace_id} and answered after {waited:.1f}s: "
                          "ok, propagation works")

    @staticmethod
    def wait_for_answer(replies: Any, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return replies.get(block=True, timeout=min(1.0, deadline - time.monotonic())).payload
            except replies.Empty:
                continue
        return None
